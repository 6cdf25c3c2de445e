// The page: wires the Live connection to the microphone, the speaker, the
// camera or screen, the transcript and the controls.

import { Microphone } from "./audio/capture.js";
import { Player } from "./audio/playback.js";
import { LiveClient, audioRate, connectionUrl, fromBase64 } from "./live.js";
import { VOICES, buildSetup, fetchPersonas, loadSettings, saveSettings } from "./settings.js";
import { runTool } from "./tools.js";
import { Transcript } from "./transcript.js";
import { FrameSampler, openCamera, openScreen } from "./video.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  statusText: $("status-text"),
  start: $("start"),
  welcome: $("welcome"),
  log: $("log"),
  textForm: $("text-form"),
  textInput: $("text-input"),
  mic: $("mic"),
  talk: $("talk"),
  camera: $("camera"),
  flip: $("flip"),
  screen: $("screen"),
  end: $("end"),
  media: $("media"),
  mediaLabel: $("media-label"),
  preview: $("preview"),
  presence: $("presence"),
  presenceText: $("presence-text"),
  newConversation: $("new-conversation"),
  openSettings: $("open-settings"),
  settings: $("settings"),
  settingsForm: $("settings-form"),
};

const settings = loadSettings();
const transcript = new Transcript(ui.log);
// Each connection asks for the chosen persona, and for the activity of the tools the server runs itself;
// a server with a key gets a fresh ephemeral token each time.
const client = new LiveClient({
  url: () => connectionUrl(window.location, { persona: settings.persona, events: "tools" }),
  buildSetup: (handle) => buildSetup(settings, handle),
});
const personas = fetchPersonas(); // what the settings' persona picker offers

const state = {
  started: false,
  audio: null, // { context, mic, player }
  micWanted: true, // the user's choice; the device may still be opening
  talking: false, // push-to-talk held
  micLevel: 0,
  micChunksSent: 0,
  video: null, // { kind: "camera"|"screen", stream, facing }
  pendingText: [], // typed while disconnected; sent on the next connection
  cancelledCalls: new Set(),
  connectedOnce: false,
  error: null,
};
const sampler = new FrameSampler(ui.preview, (jpeg) => client.sendVideo(jpeg));

// -- starting and ending -----------------------------------------------------

async function start() {
  if (state.started) return;
  state.started = true;
  ui.welcome.hidden = true;
  ui.end.disabled = false;
  // The audio context must be created in the click that starts it (autoplay policy).
  const context = new AudioContext({ latencyHint: "interactive" });
  const player = new Player(context);
  const mic = new Microphone(context);
  mic.onchunk = onMicChunk;
  player.onstats = () => renderPresence();
  state.audio = { context, player, mic };
  const ready = Promise.all([context.resume(), player.start()]);
  client.connect();
  await ready;
  if (state.micWanted) await setMic(true);
  renderControls();
}

function end() {
  client.close();
  state.audio?.mic.stop();
  state.audio?.player.stop();
  state.audio?.context.close();
  state.audio = null;
  stopVideo();
  state.started = false;
  ui.welcome.hidden = false;
  ui.start.textContent = "Continue";
  ui.end.disabled = true;
  renderControls();
  renderPresence();
}

// -- microphone ---------------------------------------------------------------

async function setMic(on) {
  state.micWanted = on;
  const mic = state.audio?.mic;
  if (!mic) return renderControls();
  if (on) {
    try {
      await mic.start();
    } catch (error) {
      state.micWanted = false;
      transcript.event(`Microphone unavailable: ${error.message || error.name}. You can still type.`);
    }
  } else {
    mic.stop();
    // Tells automatic activity detection the audio stopped, so the turn can end.
    if (!settings.pushToTalk) client.sendAudioStreamEnd();
  }
  renderControls();
}

function onMicChunk(pcm, level) {
  state.micLevel = level;
  if (settings.pushToTalk && !state.talking) return;
  if (client.sendAudio(pcm)) state.micChunksSent += 1;
}

function talk(down) {
  if (!settings.pushToTalk || down === state.talking) return;
  if (down && !client.open) return;
  state.talking = down;
  if (down) {
    // An explicit "my turn": stop the reply now rather than after a round trip.
    state.audio?.player.flush();
    client.sendActivityStart();
    if (!state.audio?.mic.active) setMic(true);
  } else {
    client.sendActivityEnd();
  }
  renderControls();
}

// -- camera and screen --------------------------------------------------------

async function startVideo(kind, facing = "user") {
  let stream;
  try {
    stream = kind === "camera" ? await openCamera(facing) : await openScreen();
  } catch (error) {
    if (error.name !== "NotAllowedError" || kind === "camera") {
      transcript.event(`${kind === "camera" ? "Camera" : "Screen sharing"} unavailable: ${error.message || error.name}`);
    }
    return;
  }
  stopVideo();
  state.video = { kind, stream, facing };
  ui.preview.srcObject = stream;
  const [track] = stream.getVideoTracks();
  track.addEventListener("ended", () => {
    if (state.video?.stream === stream) stopVideo();
  });
  sampler.start();
  await updateFlipButton();
  renderControls();
}

function stopVideo() {
  sampler.stop();
  for (const track of state.video?.stream.getTracks() ?? []) track.stop();
  state.video = null;
  ui.preview.srcObject = null;
  renderControls();
}

async function updateFlipButton() {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  const cameras = devices.filter((device) => device.kind === "videoinput").length;
  ui.flip.hidden = !(state.video?.kind === "camera" && cameras > 1);
}

// -- the conversation ---------------------------------------------------------

client.addEventListener("state", ({ detail }) => {
  state.error = detail.state === "failed" ? detail.reason || `closed with code ${detail.code}` : null;
  renderStatus(detail);
  renderControls();
});

client.addEventListener("ready", ({ detail }) => {
  const conversationShown = Boolean(ui.log.querySelector(".message"));
  if (state.connectedOnce && detail.resumed) {
    transcript.event("Reconnected; the conversation continues.");
  } else if (state.connectedOnce && conversationShown) {
    transcript.event("Reconnected as a new conversation.");
  } else if (detail.resumed) {
    transcript.event("Resumed the previous conversation.");
  }
  state.connectedOnce = true;
  sampler.resend();
  for (const text of state.pendingText.splice(0)) client.sendText(text);
});

client.addEventListener("resumefailed", () => {
  transcript.event("The server no longer knows the previous conversation; starting a new one.");
});

client.addEventListener("protocolerror", ({ detail }) => transcript.event(`Ignored a bad message: ${detail.error}`));

client.addEventListener("goaway", () => transcript.event("The server is moving this conversation to a new connection."));

client.addEventListener("content", ({ detail: content }) => {
  const player = state.audio?.player;
  if (content.interrupted) {
    player?.flush();
    transcript.interrupted();
  }
  if (content.inputTranscription) {
    transcript.userSpeech(content.inputTranscription.text ?? "", Boolean(content.inputTranscription.finished));
  }
  for (const part of content.modelTurn?.parts ?? []) {
    const blob = part.inlineData;
    if (blob?.mimeType?.startsWith("audio/pcm")) {
      const bytes = fromBase64(blob.data);
      player?.enqueue(new Int16Array(bytes.buffer, 0, bytes.byteLength >> 1), audioRate(blob.mimeType));
    } else if (part.text && !part.thought) {
      transcript.modelSpeech(part.text);
    }
  }
  if (content.outputTranscription) transcript.modelSpeech(content.outputTranscription.text ?? "");
  if (content.generationComplete || content.turnComplete) player?.drain();
  if (content.turnComplete) transcript.endTurn();
});

client.addEventListener("toolcall", async ({ detail }) => {
  const page = { showNote: (title, text) => transcript.note(title, text) };
  const responses = await Promise.all(
    detail.calls.map(async (call) => {
      transcript.toolCall(call);
      let response;
      try {
        response = await runTool(call, page);
      } catch (error) {
        response = { error: String(error.message || error) };
      }
      transcript.toolFinished(call.id, response);
      return { id: call.id, name: call.name, response };
    }),
  );
  const live = responses.filter((response) => !state.cancelledCalls.delete(response.id));
  if (live.length) client.sendToolResponses(live);
});

client.addEventListener("servertool", ({ detail }) => transcript.serverTool(detail));

client.addEventListener("toolcancel", ({ detail }) => {
  for (const id of detail.ids) {
    state.cancelledCalls.add(id);
    transcript.toolCancelled(id);
  }
});

function sendTyped(text) {
  transcript.userTyped(text);
  if (!client.sendText(text)) {
    state.pendingText.push(text);
    if (!state.started) start();
  }
}

// -- rendering ----------------------------------------------------------------

const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Ended",
  failed: "Disconnected",
};

function renderStatus(detail = { state: client.state }) {
  ui.status.dataset.state = detail.state;
  let text = STATUS_TEXT[detail.state] ?? detail.state;
  if (detail.state === "reconnecting" && detail.attempt > 1) text = `Reconnecting… (try ${detail.attempt})`;
  if (detail.state === "failed" && state.error) text = `Disconnected: ${state.error}`;
  ui.statusText.textContent = text;
}

function renderControls() {
  const micOn = Boolean(state.audio?.mic.active);
  ui.mic.setAttribute("aria-pressed", String(micOn));
  ui.mic.dataset.on = state.started ? String(micOn) : "idle";
  ui.mic.title = !state.started ? "Start talking" : micOn ? "Mute" : "Unmute";
  ui.talk.hidden = !settings.pushToTalk;
  ui.talk.setAttribute("aria-pressed", String(state.talking));
  const video = state.video?.kind ?? "none";
  ui.camera.setAttribute("aria-pressed", String(video === "camera"));
  ui.screen.setAttribute("aria-pressed", String(video === "screen"));
  if (video !== "camera") ui.flip.hidden = true;
  ui.screen.hidden = !navigator.mediaDevices?.getDisplayMedia;
  ui.media.dataset.source = video;
  ui.media.dataset.facing = state.video?.facing ?? "";
  ui.mediaLabel.textContent = video === "camera" ? "Camera" : video === "screen" ? "Screen" : "";
  renderPresence();
}

function renderPresence() {
  const playing = Boolean(state.audio?.player.stats.playing);
  const listening = Boolean(state.audio?.mic.active) && (!settings.pushToTalk || state.talking);
  let speaker = "none";
  let text = "Press start, then talk.";
  if (state.started) {
    if (!client.open) text = STATUS_TEXT[client.state] ?? "";
    else if (playing) [speaker, text] = ["assistant", "Speaking — talk to interrupt"];
    else if (settings.pushToTalk) [speaker, text] = state.talking ? ["user", "Listening…"] : ["none", "Hold to talk"];
    else if (listening) [speaker, text] = ["user", "Listening…"];
    else text = "Microphone off — type, or turn it on";
  }
  ui.presence.dataset.speaker = speaker;
  ui.presenceText.textContent = text;
}

// The level meters follow the audio at display rate, and stop when the page is hidden.
const shownLevels = new Map();
function showLevel(element, level) {
  const value = level.toFixed(2);
  if (shownLevels.get(element) === value) return; // no style work while nothing changes
  shownLevels.set(element, value);
  element.style.setProperty("--level", value);
}

function animate() {
  const level = state.audio?.mic.active ? Math.min(1, state.micLevel * 6) : 0;
  showLevel(ui.mic, level);
  showLevel(ui.presence, state.audio?.player.stats.playing ? 0.6 : level);
  requestAnimationFrame(animate);
}

// -- settings -----------------------------------------------------------------

async function fillPersonaPicker(select, description) {
  const catalog = await personas;
  if (select.options.length === 1) {
    const byName = new Map(catalog.personas.map((persona) => [persona.name, persona]));
    const fallback = byName.get(catalog.default);
    if (fallback) select.options[0].text = `Server default (${fallback.title})`;
    if (catalog.default && catalog.none) select.add(new Option("Plain assistant", catalog.none));
    for (const persona of catalog.personas) select.add(new Option(persona.title, persona.name));
  }
  // A persona saved on another server may not exist here: fall back to the server's default.
  select.value = [...select.options].some((option) => option.value === settings.persona) ? settings.persona : "";
  const shown = () => {
    const chosen = catalog.personas.find((persona) => persona.name === (select.value || catalog.default));
    description.textContent = chosen?.description ?? "";
  };
  select.onchange = shown;
  shown();
}

function fillSettingsForm() {
  const form = ui.settingsForm.elements;
  const voice = form.namedItem("voice");
  if (voice.options.length === 1) for (const name of VOICES) voice.add(new Option(name, name));
  voice.value = settings.voice;
  fillPersonaPicker(form.namedItem("persona"), $("persona-description"));
  form.namedItem("systemInstruction").value = settings.systemInstruction;
  form.namedItem("pushToTalk").checked = settings.pushToTalk;
  form.namedItem("pageTools").checked = settings.pageTools;
  form.namedItem("model").value = settings.model;
}

function applySettingsForm() {
  const form = ui.settingsForm.elements;
  Object.assign(settings, {
    persona: form.namedItem("persona").value,
    voice: form.namedItem("voice").value,
    systemInstruction: form.namedItem("systemInstruction").value,
    pushToTalk: form.namedItem("pushToTalk").checked,
    pageTools: form.namedItem("pageTools").checked,
    model: form.namedItem("model").value.trim() || settings.model,
  });
  saveSettings(settings);
  state.talking = false;
  // Setup is sent once per connection: a new connection that resumes this conversation applies it.
  if (client.wanted) {
    client.reconnect("settings changed");
    transcript.event("Settings applied.");
  }
  renderControls();
}

// -- events -------------------------------------------------------------------

ui.start.addEventListener("click", () => start());
ui.end.addEventListener("click", () => end());
ui.mic.addEventListener("click", () => (state.started ? setMic(!state.micWanted) : start()));
ui.camera.addEventListener("click", () => (state.video?.kind === "camera" ? stopVideo() : startVideo("camera")));
ui.screen.addEventListener("click", () => (state.video?.kind === "screen" ? stopVideo() : startVideo("screen")));
ui.flip.addEventListener("click", () => startVideo("camera", state.video?.facing === "user" ? "environment" : "user"));
ui.talk.addEventListener("pointerdown", (event) => {
  ui.talk.setPointerCapture(event.pointerId);
  talk(true);
});
ui.talk.addEventListener("pointerup", () => talk(false));
ui.talk.addEventListener("pointercancel", () => talk(false));
ui.talk.addEventListener("keydown", (event) => {
  if ((event.key === " " || event.key === "Enter") && !event.repeat) talk(true);
});
ui.talk.addEventListener("keyup", (event) => {
  if (event.key === " " || event.key === "Enter") talk(false);
});

// Space bar anywhere but in a text field is push-to-talk.
const typing = (target) => target instanceof HTMLElement && target.closest("input, textarea, select, button, dialog");
document.addEventListener("keydown", (event) => {
  if (event.code === "Space" && settings.pushToTalk && !typing(event.target) && !event.repeat) {
    event.preventDefault();
    talk(true);
  }
});
document.addEventListener("keyup", (event) => {
  if (event.code === "Space" && settings.pushToTalk && !typing(event.target)) talk(false);
});

ui.textForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.textInput.value.trim();
  if (!text) return;
  ui.textInput.value = "";
  sendTyped(text);
});

ui.newConversation.addEventListener("click", () => {
  client.forgetConversation();
  transcript.clear();
  if (client.wanted) client.reconnect("new conversation");
});

ui.openSettings.addEventListener("click", () => {
  fillSettingsForm();
  ui.settings.showModal();
});
ui.settings.addEventListener("close", () => {
  if (ui.settings.returnValue === "save") applySettingsForm();
});

renderStatus();
renderControls();
requestAnimationFrame(animate);

// For tests and the curious: the live objects and their counters.
window.assistant = {
  client,
  transcript,
  settings,
  stats: () => ({
    state: client.state,
    handle: client.handle,
    sessionId: client.sessionId,
    contextRate: state.audio?.context.sampleRate ?? null,
    playback: state.audio ? { ...state.audio.player.stats } : null,
    micChunksSent: state.micChunksSent,
    micOpen: Boolean(state.audio?.mic.active),
    micSettings: state.audio?.mic.stream?.getAudioTracks()[0]?.getSettings() ?? null,
    video: { ...sampler.stats, source: state.video?.kind ?? null },
  }),
};
