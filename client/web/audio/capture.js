// The microphone: getUserMedia -> capture worklet -> 16 kHz PCM chunks.

export const INPUT_RATE = 16000;

export class Microphone {
  /** @param {AudioContext} context */
  constructor(context, { chunkMs = 20 } = {}) {
    this.context = context;
    this.chunkMs = chunkMs;
    this.stream = null;
    this.source = null;
    this.node = null;
    this.onchunk = null; // (Int16Array pcm, level) => void
    this.opening = null; // the pending start()
    this.generation = 0; // bumped by stop(), so a start() still opening knows it was cancelled
  }

  get active() {
    return this.stream !== null;
  }

  /**
   * Open the microphone. Echo cancellation matters most: without it the
   * assistant hears its own voice from the speakers and interrupts itself.
   * Calls while it is opening share that attempt.
   */
  start() {
    if (this.stream) return Promise.resolve();
    this.opening ??= this.#open().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  async #open() {
    const generation = this.generation;
    if (!this.node) {
      await this.context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
      this.node = new AudioWorkletNode(this.context, "capture-processor", {
        numberOfOutputs: 0,
        processorOptions: { targetRate: INPUT_RATE, chunkMs: this.chunkMs },
      });
      this.node.port.onmessage = (event) => {
        if (this.stream) this.onchunk?.(event.data.pcm, event.data.level);
      };
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
      },
    });
    if (generation !== this.generation) {
      // Muted again while the browser was opening the device.
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    this.stream = stream;
    this.source = this.context.createMediaStreamSource(stream);
    this.source.connect(this.node);
  }

  /** Release the device, so the browser's recording indicator goes off. */
  stop() {
    this.generation += 1;
    this.source?.disconnect();
    this.source = null;
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
  }
}
