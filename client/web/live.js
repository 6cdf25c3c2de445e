// The Live protocol over one WebSocket, with reconnection and session resumption.
//
// `LiveClient` owns the socket and nothing else: it sends the setup the page
// builds, turns server frames into events, keeps the newest resumption
// handle, and when the connection drops (network, server restart, goAway)
// opens a new one that resumes the conversation with that handle. The
// server keeps handles in SQLite by default, so a conversation survives a
// server restart. Audio and frames are never queued across a reconnect:
// stale audio is worse than lost audio in a live conversation.

export const LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000];
// Reconnecting cannot fix these: a bad key, a refused origin, a message the server cannot take.
const FATAL_CLOSE_CODES = new Set([1003, 1007, 1008, 1009]);
const UNKNOWN_HANDLE = /sessionResumption\.handle/;
const HANDLE_STORAGE_KEY = "assistant.resumption-handle";

/**
 * The Live endpoint on the page's own origin, with the page's `?key=` if it has one.
 * `extra` adds this project's own parameters when they are set: `persona` (the
 * server's personas) and `events` (`"tools"`: server-side tool activity).
 */
export function liveUrl(location = window.location, extra = {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams();
  const key = new URLSearchParams(location.search).get("key");
  if (key) params.set("key", key);
  for (const [name, value] of Object.entries(extra)) if (value) params.set(name, value);
  const query = params.toString();
  return `${scheme}//${location.host}${LIVE_PATH}${query ? `?${query}` : ""}`;
}

/** Standard base64 of a byte buffer (what the server expects from browsers). */
export function toBase64(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, bytes.byteLength);
  let binary = "";
  const step = 0x8000;
  for (let i = 0; i < view.length; i += step) binary += String.fromCharCode.apply(null, view.subarray(i, i + step));
  return btoa(binary);
}

/** Bytes of a base64 string; URL-safe input is accepted too. */
export function fromBase64(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The sample rate named in a mime type such as `audio/pcm;rate=24000`. */
export function audioRate(mimeType, fallback = 24000) {
  const match = /rate=(\d+)/.exec(mimeType ?? "");
  return match ? Number(match[1]) : fallback;
}

export class LiveClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string | (() => string)} options.url the Live endpoint (see `liveUrl`), or a function that
   *   gives it for each connection (settings such as the persona travel in it)
   * @param {(handle: string|null) => object} options.buildSetup the `setup` body for a connection
   * @param {Storage} [options.storage] where the handle outlives a page reload (sessionStorage)
   */
  constructor({ url, buildSetup, storage = globalThis.sessionStorage }) {
    super();
    this.url = url;
    this.buildSetup = buildSetup;
    this.storage = storage;
    this.socket = null;
    this.state = "idle"; // idle | connecting | open | reconnecting | closed | failed
    this.attempt = 0;
    this.handle = storage?.getItem(HANDLE_STORAGE_KEY) ?? null;
    this.sessionId = null;
    this.unsaved = false; // the conversation moved on since the newest handle
    this.rolloverPending = false; // goAway seen: reconnect at the next quiet moment
    this.retryTimer = null;
    this.wanted = false; // the user wants to be connected
  }

  get open() {
    return this.state === "open";
  }

  /** Connect (or reconnect) and keep the connection up until `close()`. */
  connect() {
    this.wanted = true;
    clearTimeout(this.retryTimer);
    this.#open();
  }

  /** Hang up; no reconnection. */
  close() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "client closed");
    this.#setState("closed");
  }

  /** Forget the conversation: the next connection starts a new one. */
  forgetConversation() {
    this.#setHandle(null);
  }

  /** Reconnect now with the current handle (settings changed, goAway). */
  reconnect(reason = "reconnecting") {
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, reason);
    if (this.wanted) this.#open();
  }

  /** Send one client message; false when there is no open connection. */
  send(message) {
    if (!this.open || this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  sendAudio(pcm, rate = 16000) {
    return this.send({ realtimeInput: { audio: { data: toBase64(pcm), mimeType: `audio/pcm;rate=${rate}` } } });
  }

  sendVideo(jpegBytes) {
    return this.send({ realtimeInput: { video: { data: toBase64(jpegBytes), mimeType: "image/jpeg" } } });
  }

  sendText(text) {
    return this.send({ realtimeInput: { text } });
  }

  sendAudioStreamEnd() {
    return this.send({ realtimeInput: { audioStreamEnd: true } });
  }

  sendActivityStart() {
    return this.send({ realtimeInput: { activityStart: {} } });
  }

  sendActivityEnd() {
    return this.send({ realtimeInput: { activityEnd: {} } });
  }

  sendToolResponses(functionResponses) {
    return this.send({ toolResponse: { functionResponses } });
  }

  // -- internals -------------------------------------------------------------

  #open() {
    const resuming = Boolean(this.handle);
    this.#setState(this.attempt > 0 || this.state === "reconnecting" ? "reconnecting" : "connecting");
    const socket = new WebSocket(typeof this.url === "function" ? this.url() : this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.unsaved = false;
    this.rolloverPending = false;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      socket.send(JSON.stringify({ setup: this.buildSetup(this.handle) }));
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
      let message;
      try {
        message = JSON.parse(text);
      } catch {
        this.#emit("protocolerror", { error: `server sent a frame that is not JSON: ${text.slice(0, 80)}` });
        return;
      }
      this.#dispatch(message, resuming);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return; // a socket we replaced on purpose
      this.socket = null;
      this.#closed(event.code, event.reason);
    };
  }

  #dispatch(message, resuming) {
    if (message.setupComplete) {
      this.attempt = 0;
      this.sessionId = message.setupComplete.sessionId ?? null;
      this.#setState("open");
      this.#emit("ready", { sessionId: this.sessionId, resumed: resuming });
    }
    const content = message.serverContent;
    if (content) {
      this.unsaved = true;
      this.#emit("content", content);
    }
    if (message.toolCall) this.unsaved = true;
    if (message.toolCall) this.#emit("toolcall", { calls: message.toolCall.functionCalls ?? [] });
    if (message.toolCallCancellation) this.#emit("toolcancel", { ids: message.toolCallCancellation.ids ?? [] });
    // This project's servers only, and only when asked for (`?events=tools`): tools the server runs itself.
    if (message.serverToolActivity) this.#emit("servertool", message.serverToolActivity);
    if (message.usageMetadata) this.#emit("usage", message.usageMetadata);
    if (message.sessionResumptionUpdate) {
      const update = message.sessionResumptionUpdate;
      if (update.resumable !== false && update.newHandle) {
        this.#setHandle(update.newHandle);
        this.unsaved = false;
      }
    }
    if (message.goAway) {
      this.rolloverPending = true;
      this.#emit("goaway", { timeLeft: message.goAway.timeLeft ?? null });
    }
    // Move before the server closes this connection, but only once the newest turn has a handle.
    if (this.rolloverPending && !this.unsaved && this.handle) this.reconnect("goAway: moving to a new connection");
  }

  #closed(code, reason) {
    const wasOpen = this.state === "open";
    if (!this.wanted) {
      this.#setState("closed");
      return;
    }
    if (code === 1007 && UNKNOWN_HANDLE.test(reason) && this.handle) {
      // The server no longer knows this conversation (expired, or another store): start afresh.
      this.#setHandle(null);
      this.#emit("resumefailed", { reason });
      this.#open();
      return;
    }
    if (FATAL_CLOSE_CODES.has(code)) {
      this.wanted = false;
      this.#setState("failed", { code, reason });
      return;
    }
    const delay = RETRY_DELAYS_MS[Math.min(this.attempt, RETRY_DELAYS_MS.length - 1)];
    const jittered = Math.round(delay * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.#setState("reconnecting", { code, reason, delayMs: jittered, attempt: this.attempt, wasOpen });
    this.retryTimer = setTimeout(() => {
      if (this.wanted && !this.socket) this.#open();
    }, jittered);
  }

  #setHandle(handle) {
    this.handle = handle;
    try {
      if (handle) this.storage?.setItem(HANDLE_STORAGE_KEY, handle);
      else this.storage?.removeItem(HANDLE_STORAGE_KEY);
    } catch {
      // Storage can be unavailable (private mode); the handle still lives in memory.
    }
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.#emit("state", { state, ...detail });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
