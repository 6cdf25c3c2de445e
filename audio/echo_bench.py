"""Measure echo processors on a simulated laptop: speaker, room and microphone.

``assistant bench frontend`` prints, for each processor, the echo return
loss enhancement (ERLE: how much quieter the echo is after processing) and
how much of the user's voice survives when the user talks over the reply,
and times the talk client's audio path over the same scene. The tests use
the same scene, so the figures in the README are checked.

The scene is built from real speech (espeak-ng, a separate program): the
assistant's reply plays through a small loudspeaker (high-passed, gently
saturated), a room (early reflections and a reverberant tail longer than the
canceller's filter), a device delay, and reaches the microphone about as loud
as the user's own voice, with a noise floor. The user starts talking over the
reply (double talk), then alone after the reply ends.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio.aec import AEC_RATE, FRAME_SAMPLES, EchoProcessor, HalfDuplexGate, SpeexEchoCanceller, audible
from audio.pcm import read_wav, samples_of, to_int16

FAR_TEXT = (
    "Sure. The weather today is mostly sunny with a high of twenty two degrees. In the evening clouds "
    "will move in from the west, and there is a chance of light rain after midnight. Tomorrow looks "
    "cooler, so bring a jacket if you are heading out early."
)
NEAR_TEXT = "Wait, stop. What about the weekend? Will it rain on Saturday?"
QUIET_DBFS = -70.0  # below this a 10 ms frame of a component counts as silent


def espeak(text: str, rate: int, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> bytes:
    """Speech from espeak-ng (run as a separate program: it is GPL) as int16 PCM at ``rate``."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise RuntimeError("espeak-ng is not installed; install it with: sudo apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(
            [program, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), "--", text],
            check=True,
            capture_output=True,
        )
        return read_wav(path, rate)


@dataclass(frozen=True)
class EchoPath:
    """How the played reply reaches the microphone."""

    delay_ms: float = 40.0  # device timing left after alignment, plus the acoustic path
    echo_return_loss_db: float = 6.0  # the echo is this much quieter than the played signal
    rt60_s: float = 0.35  # reverberation time: longer than the canceller's 200 ms filter
    reverb_gain: float = 0.08  # level of the reverberant tail against the direct path (1.0)
    speaker_highpass_hz: float = 200.0  # a laptop speaker makes no bass
    speaker_drive: float = 0.8  # soft saturation of the small speaker
    seed: int = 7

    def impulse_response(self, rate: int) -> np.ndarray:
        """Speaker high-pass, direct path, a few reflections and an exponential tail."""
        rng = np.random.default_rng(self.seed)
        length = int(rate * min(1.0, self.rt60_s * 1.5))
        room = np.zeros(length)
        room[0] = 1.0
        for delay_ms, gain in ((2.7, 0.55), (5.1, -0.4), (8.9, 0.3), (13.2, -0.22)):
            room[int(rate * delay_ms / 1000)] += gain
        tail_start = int(rate * 0.004)
        t = np.arange(length - tail_start) / rate
        room[tail_start:] += self.reverb_gain * rng.standard_normal(t.size) * np.exp(-6.9 * t / self.rt60_s)
        # Windowed-sinc high-pass: a delta minus a low-pass.
        taps = 129
        n = np.arange(taps) - taps // 2
        cutoff = self.speaker_highpass_hz / rate
        lowpass = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
        highpass = -lowpass / lowpass.sum()
        highpass[taps // 2] += 1.0
        response = np.convolve(room, highpass)
        delay = int(rate * self.delay_ms / 1000)
        return np.concatenate([np.zeros(delay), response])

    def apply(self, played: np.ndarray, rate: int) -> np.ndarray:
        """The echo component at the microphone for ``played`` (int16 scale floats)."""
        x = played / 32768.0
        speaker = np.tanh(self.speaker_drive * x) / self.speaker_drive
        response = self.impulse_response(rate)
        size = x.size + response.size
        fft_size = 1 << (size - 1).bit_length()
        echo = np.fft.irfft(np.fft.rfft(speaker, fft_size) * np.fft.rfft(response, fft_size), fft_size)[: x.size]
        active = np.abs(played) > 0
        gain = _rms(played[active]) / max(_rms(echo[active] * 32768.0), 1e-9) * 10 ** (-self.echo_return_loss_db / 20)
        return echo * 32768.0 * gain


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


@dataclass
class EchoScene:
    """The microphone signal and what it is made of, frame-aligned at 16 kHz."""

    reference: np.ndarray  # int16: what the speaker played
    echo: np.ndarray  # float: its echo at the microphone
    near: np.ndarray  # float: the user's voice at the microphone
    noise: np.ndarray  # float: the microphone's noise floor

    @property
    def microphone(self) -> np.ndarray:
        return to_int16(self.echo + self.near + self.noise)


def build_scene(
    far: np.ndarray,
    near: np.ndarray,
    path: EchoPath | None = None,
    *,
    near_start_s: float = 7.5,
    near_again_after_s: float = 1.5,
    near_to_echo_db: float = 0.0,
    noise_dbfs: float = -68.0,
    rate: int = AEC_RATE,
) -> EchoScene:
    """Reply from 0 s; the user talks over it at ``near_start_s``, and again alone after it ends."""
    path = path or EchoPath()
    far_end = far.size
    second_near = far_end + int(rate * near_again_after_s)
    total = second_near + near.size + rate // 2
    total += -total % FRAME_SAMPLES
    reference = np.zeros(total, dtype=np.int16)
    reference[:far_end] = far
    echo = path.apply(reference.astype(np.float64), rate)
    voice = np.zeros(total)
    start = int(rate * near_start_s)
    voice[start : start + near.size] += near
    voice[second_near : second_near + near.size] += near
    echo_level = _rms(echo[:far_end][np.abs(echo[:far_end]) > 1])
    voice *= echo_level * 10 ** (near_to_echo_db / 20) / _rms(near.astype(np.float64)[np.abs(near) > 1])
    noise = np.random.default_rng(path.seed + 1).standard_normal(total) * 32768.0 * 10 ** (noise_dbfs / 20)
    return EchoScene(reference, echo, voice, noise)


@dataclass(frozen=True)
class EchoFigures:
    """What a processor did to the scene."""

    erle_db: float  # echo removed while only the assistant talks, after the first two seconds
    erle_learning_db: float  # the same during the first two seconds (convergence)
    double_talk_kept_db: float  # the user's voice kept while both talk (0 dB: all of it)
    double_talk_si_sdr_in_db: float  # user's voice against everything else (scale-invariant), before
    double_talk_si_sdr_out_db: float  # ... and after processing
    near_alone_kept_db: float  # the user's voice kept when the assistant is silent
    false_barge_ins: int  # times a speech detector fired on the echo alone
    barge_in_heard_ms: float | None  # from the user's first word over the reply to detection

    def table_row(self, name: str) -> str:
        heard = f"{self.barge_in_heard_ms:.0f}" if self.barge_in_heard_ms is not None else "never"
        return (
            f"{name:<44} {min(self.erle_db, 99):5.1f} {min(self.erle_learning_db, 99):6.1f} "
            f"{self.double_talk_kept_db:7.1f} {self.double_talk_si_sdr_in_db:5.1f} ->"
            f"{self.double_talk_si_sdr_out_db:5.1f} {self.near_alone_kept_db:6.1f} {self.false_barge_ins:6d} {heard:>7}"
        )


TABLE_HEADER = (
    f"{'processor':<44} {'ERLE':>5} {'0-2 s':>6} {'DT kept':>7} {'DT SI-SDR':>13} {'alone':>6} "
    f"{'false':>6} {'heard':>7}\n"
    f"{'':<44} {'dB':>5} {'dB':>6} {'dB':>7} {'in -> out dB':>13} {'kept':>6} {'barge':>6} {'ms':>7}"
)

# A speech detector of the kind a server runs on what the client sends: it fires when
# the level stays within DETECTOR_MARGIN_DB of the user's speaking level for 100 ms.
DETECTOR_MARGIN_DB = 15.0
DETECTOR_FRAMES = 10
DETECTOR_RELEASE_FRAMES = 30


def _frame_power(x: np.ndarray) -> np.ndarray:
    frames = x[: x.size - x.size % FRAME_SAMPLES].astype(np.float64).reshape(-1, FRAME_SAMPLES)
    return np.mean(np.square(frames), axis=1)


def processing_lag(output: np.ndarray, near: np.ndarray, mask: np.ndarray, max_lag: int = 2 * FRAME_SAMPLES) -> int:
    """How many samples the processor delays its output (speex's preprocessor: one frame)."""
    clean = near.reshape(-1, FRAME_SAMPLES)[mask].ravel()

    def match(lag: int) -> float:
        shifted = np.concatenate([output[lag:], np.zeros(lag)])
        return abs(float(shifted.reshape(-1, FRAME_SAMPLES)[mask].ravel() @ clean))

    return max(range(max_lag), key=match)


def _masked(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return x.astype(np.float64).reshape(-1, FRAME_SAMPLES)[mask].ravel()


def _kept_db(output: np.ndarray, near: np.ndarray, mask: np.ndarray) -> float:
    """Gain of the user's voice in ``output``: its projection onto the clean voice, over ``mask`` frames."""
    out, clean = _masked(output, mask), _masked(near, mask)
    return 20 * math.log10(max(abs(float(out @ clean)) / float(clean @ clean), 1e-6))


def _si_sdr_db(signal: np.ndarray, near: np.ndarray, mask: np.ndarray) -> float:
    """Scale-invariant signal to distortion ratio of the user's voice in ``signal`` (a level change costs nothing)."""
    out, clean = _masked(signal, mask), _masked(near, mask)
    target = clean * float(out @ clean) / float(clean @ clean)
    error = out - target
    return 10 * math.log10(max(float(target @ target), 1e-9) / max(float(error @ error), 1e-9))


def detector_onsets(power: np.ndarray, threshold: float) -> list[int]:
    """Frames where the speech detector fires."""
    onsets, run, quiet, armed = [], 0, 0, True
    for index, loud in enumerate(power > threshold):
        run = run + 1 if loud else 0
        quiet = 0 if loud else quiet + 1
        if armed and run >= DETECTOR_FRAMES:
            onsets.append(index - DETECTOR_FRAMES + 1)
            armed = False
        elif not armed and quiet >= DETECTOR_RELEASE_FRAMES:
            armed = True
    return onsets


def measure(processor: EchoProcessor, scene: EchoScene, rate: int = AEC_RATE) -> EchoFigures:
    """Run ``processor`` frame by frame over the scene and score what comes out."""
    microphone = scene.microphone
    output = np.concatenate(
        [
            processor.process(microphone[i : i + FRAME_SAMPLES], frame, audible(frame))
            for i in range(0, microphone.size, FRAME_SAMPLES)
            for frame in [scene.reference[i : i + FRAME_SAMPLES]]
        ]
    ).astype(np.float64)
    quiet = 32768.0**2 * 10 ** (QUIET_DBFS / 10)
    echo_on, near_on = _frame_power(scene.echo) > quiet, _frame_power(scene.near) > quiet
    settled = np.arange(echo_on.size) >= 2 * rate // FRAME_SAMPLES
    far_only, double_talk, near_alone = echo_on & ~near_on, echo_on & near_on, near_on & ~echo_on
    lag = processing_lag(output, scene.near, near_alone)
    output = np.concatenate([output[lag:], np.zeros(lag)])
    mic_power, out_power = _frame_power(microphone), _frame_power(output)

    def erle(mask: np.ndarray) -> float:
        return 10 * math.log10(mic_power[mask].sum() / max(out_power[mask].sum(), 1e-9))

    threshold = float(np.mean(_frame_power(scene.near)[near_on])) * 10 ** (-DETECTOR_MARGIN_DB / 10)
    onsets = detector_onsets(out_power, threshold)
    first_voice = int(np.argmax(double_talk))
    heard = [onset for onset in onsets if onset >= first_voice]
    return EchoFigures(
        erle_db=erle(far_only & settled),
        erle_learning_db=erle(far_only & ~settled),
        double_talk_kept_db=_kept_db(output, scene.near, double_talk),
        double_talk_si_sdr_in_db=_si_sdr_db(microphone, scene.near, double_talk),
        double_talk_si_sdr_out_db=_si_sdr_db(output, scene.near, double_talk),
        near_alone_kept_db=_kept_db(output, scene.near, near_alone),
        false_barge_ins=sum(1 for onset in onsets if far_only[onset]),
        barge_in_heard_ms=(heard[0] - first_voice) * 1000 * FRAME_SAMPLES / rate if heard else None,
    )


def default_scene(path: EchoPath | None = None) -> EchoScene:
    far = samples_of(espeak(FAR_TEXT, AEC_RATE, speed=165))
    near = samples_of(espeak(NEAR_TEXT, AEC_RATE, voice="en-us+f3", speed=150, pitch=60))
    return build_scene(far, near, path)


CANDIDATES: dict[str, Callable[[], EchoProcessor]] = {
    "speex AEC + suppressor, gated until trusted": SpeexEchoCanceller,
    "speex AEC + residual echo suppressor": lambda: SpeexEchoCanceller(trusted_erle_db=None),
    "speex AEC, linear only": lambda: SpeexEchoCanceller(suppress_residual=False, trusted_erle_db=None),
    "half-duplex gate": HalfDuplexGate,
}
