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
  }

  get active() {
    return this.stream !== null;
  }

  /**
   * Open the microphone. Echo cancellation matters most: without it the
   * assistant hears its own voice from the speakers and interrupts itself.
   */
  async start(deviceId) {
    if (this.stream) return;
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
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        deviceId: deviceId ? { exact: deviceId } : undefined,
        channelCount: 1,
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
      },
    });
    this.source = this.context.createMediaStreamSource(this.stream);
    this.source.connect(this.node);
  }

  /** Release the device, so the browser's recording indicator goes off. */
  stop() {
    this.source?.disconnect();
    this.source = null;
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
  }
}
