// AudioWorklet processor: a jitter-buffered ring of reply audio at the device rate.
//
// The page posts reply audio (already resampled to the context rate) as it
// arrives from the socket; this processor plays it without gaps. It waits
// for `prebufferMs` of audio before it starts (and again after running dry
// mid-reply), so network jitter does not turn into clicks, but a reply whose
// stream has ended ("drain") plays out to its last sample at once. A "flush"
// (the user barged in) empties the ring at the next render quantum.
//
// Counters (frames played, flushed, underruns) are posted to the page: they
// are what tests assert on, and what the page uses to show "speaking".

const STATS_INTERVAL_FRAMES = 2048;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { prebufferMs = 80, capacitySeconds = 30 } = options.processorOptions ?? {};
    this.prebuffer = Math.round((sampleRate * prebufferMs) / 1000);
    this.ring = new Float32Array(Math.round(sampleRate * capacitySeconds));
    this.read = 0; // absolute frame counters; index = counter % ring.length
    this.write = 0;
    this.started = false; // past the prebuffer
    this.draining = false; // the reply's stream has ended: play out the rest
    this.stats = { received: 0, played: 0, flushed: 0, underruns: 0, flushes: 0 };
    this.sinceStats = 0;
    this.dirty = false; // counters changed since the last post
    this.wasPlaying = false;
    this.port.onmessage = (event) => this.#command(event.data);
  }

  get buffered() {
    return this.write - this.read;
  }

  #command(message) {
    switch (message.type) {
      case "audio":
        this.#push(message.samples);
        this.draining = false;
        break;
      case "drain":
        this.draining = true;
        break;
      case "flush":
        this.stats.flushed += this.buffered;
        this.stats.flushes += 1;
        this.read = this.write;
        this.started = false;
        this.draining = false;
        this.#post();
        break;
    }
  }

  #push(samples) {
    if (this.buffered + samples.length > this.ring.length) this.#grow(this.buffered + samples.length);
    const size = this.ring.length;
    let at = this.write % size;
    const first = Math.min(samples.length, size - at);
    this.ring.set(samples.subarray(0, first), at);
    if (first < samples.length) this.ring.set(samples.subarray(first), 0);
    this.write += samples.length;
    this.stats.received += samples.length;
    this.dirty = true;
  }

  // A model may send a long reply faster than real time; never drop any of it.
  #grow(needed) {
    const bigger = new Float32Array(Math.max(needed, this.ring.length * 2));
    const count = this.buffered;
    for (let i = 0; i < count; i++) bigger[i] = this.ring[(this.read + i) % this.ring.length];
    this.ring = bigger;
    this.read = 0;
    this.write = count;
  }

  process(_inputs, outputs) {
    const output = outputs[0];
    const frames = output[0].length;
    if (!this.started && (this.buffered >= this.prebuffer || (this.draining && this.buffered > 0))) {
      this.started = true;
    }
    let played = 0;
    if (this.started) {
      const size = this.ring.length;
      played = Math.min(frames, this.buffered);
      for (let i = 0; i < played; i++) output[0][i] = this.ring[(this.read + i) % size];
      this.read += played;
      if (played < frames) {
        // Ran dry. Mid-reply that is an underrun; after a drained reply it is the end.
        if (!this.draining) this.stats.underruns += 1;
        this.started = false;
      }
    }
    for (let i = played; i < frames; i++) output[0][i] = 0;
    for (let c = 1; c < output.length; c++) output[c].set(output[0]);
    this.stats.played += played;
    this.dirty ||= played > 0;
    this.sinceStats += frames;
    const playing = played > 0;
    if (playing !== this.wasPlaying || (this.dirty && this.sinceStats >= STATS_INTERVAL_FRAMES)) this.#post(playing);
    return true;
  }

  #post(playing = this.wasPlaying) {
    this.wasPlaying = playing;
    this.sinceStats = 0;
    this.dirty = false;
    this.port.postMessage({ ...this.stats, buffered: this.buffered, playing, rate: sampleRate });
  }
}

registerProcessor("playback-processor", PlaybackProcessor);
