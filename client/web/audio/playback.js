// Reply audio: base64 PCM chunks from the socket -> the playback worklet.

import { StreamResampler, pcm16ToFloat } from "./resampler.js";

export class Player {
  /** @param {AudioContext} context */
  constructor(context, { prebufferMs = 80, capacitySeconds = 30 } = {}) {
    this.context = context;
    this.options = { prebufferMs, capacitySeconds }; // the ring grows past its capacity if it must
    this.node = null;
    this.resamplers = new Map(); // source rate -> resampler (a reply keeps its rate)
    this.tailPending = false; // the resamplers hold audio that only more input (or drain) pushes out
    this.stats = { received: 0, played: 0, flushed: 0, underruns: 0, flushes: 0, buffered: 0, playing: false };
    this.onstats = null;
  }

  async start() {
    await this.context.audioWorklet.addModule(new URL("./playback-worklet.js", import.meta.url));
    this.node = new AudioWorkletNode(this.context, "playback-processor", {
      numberOfInputs: 0,
      outputChannelCount: [1],
      processorOptions: this.options,
    });
    this.node.port.onmessage = (event) => {
      this.stats = event.data;
      this.onstats?.(this.stats);
    };
    this.node.connect(this.context.destination);
  }

  /** Queue 16-bit mono PCM at `rate` Hz; it plays as soon as the jitter buffer allows. */
  enqueue(pcm, rate) {
    if (!this.node) return;
    let resampler = this.resamplers.get(rate);
    if (!resampler) {
      resampler = new StreamResampler(rate, this.context.sampleRate);
      this.resamplers.set(rate, resampler);
    }
    this.#send(resampler, pcm16ToFloat(pcm));
    this.tailPending = true;
  }

  #send(resampler, input) {
    const output = new Float32Array(resampler.maxOutput(input.length));
    const count = resampler.process(input, output);
    const samples = output.slice(0, count);
    this.node.port.postMessage({ type: "audio", samples }, [samples.buffer]);
  }

  /** The reply's audio has all arrived: play what is buffered without waiting for more. */
  drain() {
    if (!this.node) return;
    if (this.tailPending) {
      // A resampler holds back half its kernel; push it out with silence.
      for (const resampler of this.resamplers.values()) this.#send(resampler, new Float32Array(resampler.halfWidth));
      this.tailPending = false;
    }
    this.node.port.postMessage({ type: "drain" });
  }

  /** Drop everything queued at once (the user barged in). */
  flush() {
    for (const resampler of this.resamplers.values()) resampler.reset();
    this.tailPending = false;
    this.node?.port.postMessage({ type: "flush" });
  }

  /** Seconds of reply audio waiting in the jitter buffer. */
  get bufferedSeconds() {
    return this.stats.buffered / this.context.sampleRate;
  }

  stop() {
    this.node?.disconnect();
    this.node = null;
  }
}
