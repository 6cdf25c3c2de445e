// AudioWorklet processor: microphone at the device rate -> 16 kHz 16-bit PCM chunks.
//
// Runs on the audio rendering thread. Each render quantum (128 frames) is
// mixed to mono and resampled; every `chunkMs` of 16 kHz audio is posted to
// the main thread as an Int16Array (transferred, not copied) with its RMS
// level, so the page can send it at once and drive a level meter.

import { StreamResampler, floatToPcm16 } from "./resampler.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, chunkMs = 20 } = options.processorOptions ?? {};
    this.targetRate = targetRate;
    this.resampler = new StreamResampler(sampleRate, targetRate);
    this.chunk = new Float32Array(Math.round((targetRate * chunkMs) / 1000));
    this.filled = 0;
    this.mono = new Float32Array(128);
    this.scratch = new Float32Array(this.resampler.maxOutput(128) + 8);
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected yet
    const frames = channels[0].length;
    if (this.mono.length < frames) {
      this.mono = new Float32Array(frames);
      this.scratch = new Float32Array(this.resampler.maxOutput(frames) + 8);
    }
    const mono = this.mono.subarray(0, frames);
    mono.set(channels[0]);
    for (let c = 1; c < channels.length; c++) {
      const channel = channels[c];
      for (let i = 0; i < frames; i++) mono[i] += channel[i];
    }
    if (channels.length > 1) for (let i = 0; i < frames; i++) mono[i] /= channels.length;
    const produced = this.resampler.process(mono, this.scratch);
    for (let i = 0; i < produced; i++) {
      this.chunk[this.filled++] = this.scratch[i];
      if (this.filled === this.chunk.length) this.#emit();
    }
    return true;
  }

  #emit() {
    let energy = 0;
    for (let i = 0; i < this.chunk.length; i++) energy += this.chunk[i] * this.chunk[i];
    const pcm = floatToPcm16(this.chunk);
    this.port.postMessage({ pcm, rate: this.targetRate, level: Math.sqrt(energy / this.chunk.length) }, [pcm.buffer]);
    this.filled = 0;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
