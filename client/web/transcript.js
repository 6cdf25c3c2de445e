// The conversation as it happens: both sides' transcripts, tool calls, notes.
//
// Transcription arrives in fragments that are joined into one bubble per
// speaker per turn. Input transcription can arrive after the reply has
// started, so a turn keeps its user bubble and its model bubble apart and
// fills whichever the fragment belongs to.
//
// Tools the server runs itself show up too (`serverToolActivity`), and what a
// knowledge search found is shown as a card: the passage the answer quotes,
// with its original when the collection keeps one (a couplet's Tamil).

const ARGS_SHOWN = 48; // characters of a call's arguments shown inline; all of them on hover

export class Transcript {
  /** @param {HTMLElement} list the log element */
  constructor(list) {
    this.list = list;
    this.user = null; // the bubble of what the user is saying in this turn
    this.model = null; // the bubble of the reply in this turn
    this.calls = new Map(); // call id -> its element
  }

  /** A fragment of the user's speech, as the server recognised it. */
  userSpeech(text, finished = false) {
    if (text) {
      if (this.user?.dataset.final) this.endTurn(); // the previous utterance was complete: a new turn
      if (!this.user) this.user = this.#bubble("user", this.model);
      this.#appendText(this.user, text);
    }
    if (finished && this.user) this.user.dataset.final = "true";
  }

  /** A line the user typed; it starts a new turn. */
  userTyped(text) {
    this.endTurn();
    this.#appendText(this.#bubble("user"), text).dataset.typed = "true";
  }

  /** A fragment of the reply (output transcription, or text parts in TEXT mode). */
  modelSpeech(text) {
    if (!text) return;
    if (!this.model) this.model = this.#bubble("model");
    this.#appendText(this.model, text);
  }

  /** The user barged in: the reply stops where it was. */
  interrupted() {
    if (this.model) this.model.dataset.interrupted = "true";
    this.endTurn();
  }

  endTurn() {
    if (this.model) this.model.dataset.final = "true";
    this.user = null;
    this.model = null;
  }

  /** A tool call the page runs; returns the element so its state can change. */
  toolCall(call) {
    const item = document.createElement("li");
    item.className = "tool";
    item.dataset.state = "running";
    item.dataset.name = call.name;
    const name = document.createElement("span");
    name.className = "tool-name";
    name.textContent = call.name;
    const args = document.createElement("code");
    args.className = "tool-args";
    const json = JSON.stringify(call.args ?? {});
    args.textContent = json.length > ARGS_SHOWN ? `${json.slice(0, ARGS_SHOWN - 1)}…` : json;
    args.title = json;
    const state = document.createElement("span");
    state.className = "tool-state";
    state.textContent = "running";
    item.append(name, state);
    if (json !== "{}") item.append(args);
    this.#add(item);
    if (call.id) this.calls.set(call.id, item);
    return item;
  }

  toolFinished(id, response) {
    const item = this.calls.get(id);
    if (!item || item.dataset.state !== "running") return;
    this.calls.delete(id);
    const failed = response && "error" in response;
    item.dataset.state = failed ? "failed" : "done";
    item.querySelector(".tool-state").textContent = failed ? `failed: ${response.error}` : "done";
    item.title = JSON.stringify(response);
  }

  toolCancelled(id) {
    const item = this.calls.get(id);
    if (!item) return;
    this.calls.delete(id);
    item.dataset.state = "cancelled";
    item.querySelector(".tool-state").textContent = "cancelled";
  }

  /** What a tool the server runs is doing (`serverToolActivity`: running, then done, failed or cancelled). */
  serverTool(activity) {
    if (activity.state === "running") {
      this.toolCall({ id: activity.id, name: activity.name, args: activity.args }).dataset.side = "server";
    } else if (activity.state === "cancelled") {
      this.toolCancelled(activity.id);
    } else {
      this.toolFinished(activity.id, activity.response ?? {});
      const output = activity.response?.output;
      if (activity.state === "done" && activity.name === "search_knowledge" && output?.passages?.length) {
        this.passages(output.passages, output.read_aloud);
      }
    }
  }

  /** What a knowledge search found: the best passage as a card, the others folded away under it. */
  passages(passages, readAloud = null) {
    const [best, ...others] = passages;
    const card = this.#passage(best, readAloud);
    if (others.length) {
      const more = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = `${others.length} more found`;
      more.append(summary, ...others.map((passage) => this.#passage(passage, readAloud, "div")));
      card.append(more);
    }
    this.#add(card);
  }

  #passage(passage, readAloud, tag = "li") {
    const card = document.createElement(tag);
    card.className = "passage";
    const source = document.createElement("p");
    source.className = "passage-source";
    source.textContent = passage.source ?? "";
    const text = document.createElement("p");
    text.className = "passage-text";
    text.textContent = passage.text ?? "";
    card.append(source, text);
    const original = readAloud ? passage.metadata?.[readAloud.field] : null;
    if (typeof original === "string" && original.trim()) {
      const shown = document.createElement("p");
      shown.className = "passage-original";
      shown.lang = readAloud.voice; // espeak-ng voices are named by language tag ("ta": Tamil)
      shown.textContent = original;
      card.append(shown);
    }
    return card;
  }

  /** A note the model asked to show (the show_note function). */
  note(title, text) {
    const item = document.createElement("li");
    item.className = "note";
    if (title) {
      const heading = document.createElement("strong");
      heading.textContent = title;
      item.append(heading);
    }
    const body = document.createElement("p");
    body.textContent = text;
    item.append(body);
    this.#add(item);
  }

  /** A line about the connection itself ("reconnected", "resumed"). */
  event(text) {
    const item = document.createElement("li");
    item.className = "event";
    item.textContent = text;
    this.#add(item);
  }

  clear() {
    this.list.replaceChildren();
    this.calls.clear();
    this.endTurn();
  }

  #bubble(role, before = null) {
    const item = document.createElement("li");
    item.className = `message ${role}`;
    item.dataset.role = role;
    const speaker = document.createElement("span");
    speaker.className = "visually-hidden";
    speaker.textContent = role === "user" ? "You: " : "Assistant: ";
    const text = document.createElement("span");
    text.className = "text";
    item.append(speaker, text);
    this.#add(item, before);
    return item;
  }

  #appendText(bubble, text) {
    // Fragments carry their own spacing (the protocol's clients concatenate them).
    bubble.querySelector(".text").textContent += text;
    this.#scroll();
    return bubble;
  }

  #add(item, before = null) {
    if (before && before.parentNode === this.list) this.list.insertBefore(item, before);
    else this.list.append(item);
    this.#scroll();
  }

  #scroll() {
    const scroller = this.list.parentElement ?? this.list;
    scroller.scrollTop = scroller.scrollHeight;
  }
}
