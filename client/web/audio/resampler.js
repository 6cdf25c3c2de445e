// A streaming windowed-sinc resampler for mono Float32 audio.
//
// Used by the microphone worklet (device rate, usually 44.1 or 48 kHz, down
// to the 16 kHz the Live protocol wants) and by playback (the model's 24 kHz
// up to the device rate). Linear interpolation would alias: speech above
// 8 kHz folds back into the band a speech recogniser listens to, so this is a
// proper low-pass interpolator whose cutoff follows the lower of the two
// rates. It is allocation-free per call once warmed up, because it runs on
// the audio rendering thread.

const ZERO_CROSSINGS = 16; // kernel half-width, in periods of the lower rate
const PHASES = 512; // kernel table resolution per input sample
const KAISER_BETA = 8.6; // about 80 dB stopband
const ROLLOFF = 0.85; // cutoff as a fraction of the lower Nyquist frequency

function besselI0(x) {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 30; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

export class StreamResampler {
  /**
   * @param {number} inputRate samples per second coming in
   * @param {number} outputRate samples per second wanted
   */
  constructor(inputRate, outputRate) {
    if (!(inputRate > 0 && outputRate > 0)) throw new RangeError(`bad rates ${inputRate} -> ${outputRate}`);
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    this.step = inputRate / outputRate; // input samples per output sample
    this.passthrough = inputRate === outputRate;
    const scale = Math.min(1, outputRate / inputRate);
    this.cutoff = 0.5 * ROLLOFF * scale; // cycles per input sample
    this.halfWidth = Math.ceil(ZERO_CROSSINGS / scale); // input samples each side
    this.table = this.#kernelTable();
    this.buffer = new Float32Array(4096);
    this.length = this.halfWidth; // leading zeros: the first output is centred on the first input
    this.time = this.halfWidth; // position of the next output sample in buffer coordinates
  }

  #kernelTable() {
    const size = this.halfWidth * PHASES + 2;
    const table = new Float32Array(size);
    const norm = besselI0(KAISER_BETA);
    for (let i = 0; i < size; i++) {
      const d = i / PHASES; // distance in input samples
      const r = d / this.halfWidth;
      if (r >= 1) break;
      const x = 2 * this.cutoff * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      table[i] = 2 * this.cutoff * sinc * (besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / norm);
    }
    return table;
  }

  /** How many output samples at most a call with `inputLength` samples can produce. */
  maxOutput(inputLength) {
    return Math.ceil((this.length - this.time + inputLength) / this.step) + 2;
  }

  /**
   * Resample `input`, writing into `output`; returns how many samples were written.
   * Output lags input by `halfWidth` input samples (under 1 ms at 44.1 kHz).
   */
  process(input, output) {
    if (this.passthrough) {
      output.set(input);
      return input.length;
    }
    this.#append(input);
    const last = this.length - this.halfWidth; // an output needs halfWidth samples after it
    const table = this.table;
    const buffer = this.buffer;
    const half = this.halfWidth;
    let written = 0;
    let time = this.time;
    while (time < last && written < output.length) {
      const centre = Math.floor(time);
      const frac = time - centre;
      let sum = 0;
      for (let k = -half + 1; k <= half; k++) {
        const distance = Math.abs(k - frac) * PHASES;
        const index = distance | 0;
        if (index >= table.length - 1) continue;
        const weight = table[index] + (table[index + 1] - table[index]) * (distance - index);
        sum += buffer[centre + k] * weight;
      }
      output[written++] = sum;
      time += this.step;
    }
    this.time = time;
    this.#discardConsumed();
    return written;
  }

  /** Forget buffered input, e.g. when playback is flushed on a barge-in. */
  reset() {
    this.buffer.fill(0, 0, this.halfWidth);
    this.length = this.halfWidth;
    this.time = this.halfWidth;
  }

  #append(input) {
    if (this.length + input.length > this.buffer.length) {
      const grown = new Float32Array(Math.max(this.buffer.length * 2, this.length + input.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;
  }

  #discardConsumed() {
    const keepFrom = Math.floor(this.time) - this.halfWidth;
    if (keepFrom <= 0) return;
    this.buffer.copyWithin(0, keepFrom, this.length);
    this.length -= keepFrom;
    this.time -= keepFrom;
  }
}

/** Convert float samples in [-1, 1] to little-endian 16-bit PCM, clipping. */
export function floatToPcm16(samples, count = samples.length) {
  const pcm = new Int16Array(count);
  for (let i = 0; i < count; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    pcm[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return pcm;
}

/** Convert 16-bit PCM to float samples in [-1, 1). */
export function pcm16ToFloat(pcm) {
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 0x8000;
  return samples;
}
