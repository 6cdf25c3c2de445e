// What the user can choose, kept in localStorage, and the setup it becomes.

import { DECLARATIONS } from "./tools.js";

const STORAGE_KEY = "assistant.settings";

export const DEFAULT_MODEL = "models/gemini-live-2.5-flash";

// Gemini Live's prebuilt voices; a local backend maps or ignores the name.
export const VOICES = ["Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr"];

export const DEFAULTS = Object.freeze({
  model: DEFAULT_MODEL,
  voice: "", // the server's default
  persona: "", // the server's default (`assistant serve --persona`)
  systemInstruction: "",
  pushToTalk: false,
  pageTools: true,
});

/** The personas a server offers (`/personas.json`); an empty list when it has none or is not this project's. */
export async function fetchPersonas(fetcher = globalThis.fetch) {
  try {
    const response = await fetcher("personas.json", { cache: "no-store" });
    if (!response.ok) return { default: null, none: null, personas: [] };
    return await response.json();
  } catch {
    return { default: null, none: null, personas: [] };
  }
}

export function loadSettings(storage = globalThis.localStorage) {
  try {
    const saved = JSON.parse(storage?.getItem(STORAGE_KEY) ?? "{}");
    const settings = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) {
      if (typeof saved[key] === typeof DEFAULTS[key]) settings[key] = saved[key];
    }
    return settings;
  } catch {
    return { ...DEFAULTS };
  }
}

export function saveSettings(settings, storage = globalThis.localStorage) {
  try {
    storage?.setItem(STORAGE_KEY, JSON.stringify(settings));
  } catch {
    // Private mode or a full quota: the settings still apply to this visit.
  }
}

/**
 * The `setup` body for one connection.
 *
 * Transcription is asked for both ways (the page shows both sides), and
 * resumption always (a dropped connection resumes with the newest handle).
 * The sliding window keeps a long camera session going past the service's
 * two-minute limit for audio with video. Push-to-talk turns the server's
 * voice activity detection off, so turns are exactly what the user held.
 */
export function buildSetup(settings, handle) {
  const setup = {
    model: settings.model || DEFAULT_MODEL,
    generationConfig: { responseModalities: ["AUDIO"] },
    inputAudioTranscription: {},
    outputAudioTranscription: {},
    sessionResumption: handle ? { handle } : {},
    contextWindowCompression: { slidingWindow: {} },
  };
  if (settings.voice) {
    setup.generationConfig.speechConfig = { voiceConfig: { prebuiltVoiceConfig: { voiceName: settings.voice } } };
  }
  if (settings.systemInstruction.trim()) {
    setup.systemInstruction = { parts: [{ text: settings.systemInstruction.trim() }] };
  }
  setup.tools = settings.pageTools ? [{ functionDeclarations: DECLARATIONS }] : [];
  // Said both ways: a resumed connection must not inherit the previous connection's choice.
  setup.realtimeInputConfig = { automaticActivityDetection: { disabled: settings.pushToTalk } };
  return setup;
}
