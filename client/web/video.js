// Camera and screen: a MediaStream sampled to JPEG stills at about 1 fps.
//
// The Live protocol takes video as single frames; each costs the model about
// 258 tokens, so a frame that barely differs from the last one sent is
// skipped. The difference is measured on a 32x32 grey thumbnail, which is
// cheap and ignores sensor noise and JPEG-level flicker.

export const MAX_SIDE = 1024;
const THUMB = 32;
const CHANGE_THRESHOLD = 0.02; // mean absolute difference (0..1) below which a frame is "the same"

/** The size a frame is scaled to: longest side at most `maxSide`, aspect kept. */
export function fitWithin(width, height, maxSide = MAX_SIDE) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

export class FrameSampler {
  /**
   * @param {HTMLVideoElement} video the element showing the stream (the page's preview)
   * @param {(jpeg: Uint8Array) => boolean} send returns false when the frame could not be sent
   */
  constructor(video, send, { intervalMs = 1000, quality = 0.8 } = {}) {
    this.video = video;
    this.send = send;
    this.intervalMs = intervalMs;
    this.quality = quality;
    this.canvas = document.createElement("canvas");
    this.thumbCanvas = document.createElement("canvas");
    this.thumbCanvas.width = this.thumbCanvas.height = THUMB;
    this.lastThumb = null;
    this.timer = null;
    this.busy = false;
    this.stats = { sent: 0, skipped: 0, width: 0, height: 0, bytes: 0 };
  }

  start() {
    this.stop();
    this.lastThumb = null;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Send the next frame even if it looks like the last one (e.g. on a new connection). */
  resend() {
    this.lastThumb = null;
  }

  async sample() {
    const video = this.video;
    if (this.busy || video.readyState < 2 || !video.videoWidth) return;
    this.busy = true;
    try {
      const thumb = this.#thumbnail(video);
      if (this.lastThumb && difference(thumb, this.lastThumb) < CHANGE_THRESHOLD) {
        this.stats.skipped += 1;
        return;
      }
      const { width, height } = fitWithin(video.videoWidth, video.videoHeight);
      this.canvas.width = width;
      this.canvas.height = height;
      this.canvas.getContext("2d").drawImage(video, 0, 0, width, height);
      const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", this.quality));
      if (!blob) return;
      const jpeg = new Uint8Array(await blob.arrayBuffer());
      if (this.send(jpeg)) {
        this.lastThumb = thumb;
        Object.assign(this.stats, { sent: this.stats.sent + 1, width, height, bytes: jpeg.length });
      }
    } finally {
      this.busy = false;
    }
  }

  #thumbnail(video) {
    const context = this.thumbCanvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, THUMB, THUMB);
    const { data } = context.getImageData(0, 0, THUMB, THUMB);
    const grey = new Float32Array(THUMB * THUMB);
    for (let i = 0; i < grey.length; i++) {
      grey[i] = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
    }
    return grey;
  }
}

function difference(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

/** Open the camera; `facing` is "user" (front) or "environment" (back, on phones). */
export function openCamera(facing = "user") {
  return navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { facingMode: { ideal: facing }, width: { ideal: 1280 }, height: { ideal: 720 } },
  });
}

/** Ask the user which screen, window or tab to share. */
export function openScreen() {
  if (!navigator.mediaDevices.getDisplayMedia) {
    return Promise.reject(new Error("this browser cannot share the screen"));
  }
  return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 5, max: 15 } }, audio: false });
}
