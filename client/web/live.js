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
// Ephemeral tokens work on v1alpha's constrained method, as with Gemini and its JS SDK.
export const CONSTRAINED_PATH = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained";
export const TOKEN_PATH = "/v1alpha/auth_tokens";

const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000];
// Reconnecting cannot fix these: a bad key, a refused origin, a message the server cannot take.
const FATAL_CLOSE_CODES = new Set([1003, 1007, 1008, 1009]);
const UNKNOWN_HANDLE = /sessionResumption\.handle/;
// The server closes a token's connection when the token expires or cannot open one: ask for a new token.
const TOKEN_REFUSED = /ephemeral token/;
const HANDLE_STORAGE_KEY = "assistant.resumption-handle";

/**
 * The Live endpoint on the page's own origin. `extra` adds parameters when
 * they are set: `access_token` (an ephemeral token, on the constrained path),
 * and this project's own `persona` (the server's personas) and `events`
 * (`"tools"`: server-side tool activity).
 */
export function liveUrl(location = window.location, extra = {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(extra)) if (value) params.set(name, value);
  const query = params.toString();
  const path = extra.access_token ? CONSTRAINED_PATH : LIVE_PATH;
  return `${scheme}//${location.host}${path}${query ? `?${query}` : ""}`;
}

const NOT_SIGNED_IN = "this server needs its access key: open the address it printed, with ?key=";

/** Why the page cannot get a token; the status line shows the message. */
export class AccessError extends Error {}

/**
 * The Live endpoint for the next connection. The page never holds the
 * server's long-lived key: opening `/?key=K` traded it for an HttpOnly
 * cookie, and when the server says it wants keys (`/config.json`), each
 * connection gets a fresh single-use token minted with that cookie.
 */
export async function connectionUrl(location = window.location, extra = {}) {
  const config = await (await fetch("/config.json", { cache: "no-store" })).json();
  if (config.auth !== "token") return liveUrl(location, extra);
  if (!config.signedIn) throw new AccessError(NOT_SIGNED_IN);
  const response = await fetch(TOKEN_PATH, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ uses: 1 }),
  });
  if (response.status === 401) throw new AccessError(NOT_SIGNED_IN);
  if (!response.ok) throw new AccessError(`the server gave no token (HTTP ${response.status})`);
  const token = await response.json();
  return liveUrl(location, { ...extra, access_token: token.name });
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
   * @param {string | (() => string | Promise<string>)} options.url the Live endpoint (see `liveUrl`), or a
   *   function that gives it for each connection (settings such as the persona, and a fresh token, travel in
   *   it); an `AccessError` it throws ends the connection attempts with that message
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

  async #open() {
    const resuming = Boolean(this.handle);
    this.#setState(this.attempt > 0 || this.state === "reconnecting" ? "reconnecting" : "connecting");
    const opening = { close() {} }; // stands for the socket while the URL (a token) is on its way
    this.socket = opening;
    let url;
    try {
      url = typeof this.url === "function" ? await this.url() : this.url;
    } catch (error) {
      if (this.socket !== opening) return;
      this.socket = null;
      if (error instanceof AccessError) {
        this.wanted = false;
        this.#setState("failed", { code: null, reason: error.message });
      } else {
        this.#closed(1006, `could not reach the server: ${error.message}`);
      }
      return;
    }
    if (this.socket !== opening) return;
    const socket = new WebSocket(url);
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
    if (FATAL_CLOSE_CODES.has(code) && !(code === 1008 && TOKEN_REFUSED.test(reason))) {
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
