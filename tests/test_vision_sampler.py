"""Frame sources, the change gate and the sampler, on frames made at test time.

Every timing decision runs on the frames' own timestamps, so these tests
replay 30 fps cameras for several "seconds" in milliseconds, the same way
every time.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from assistant.bench.vision_costs import bench_sampler
from assistant.protocol import VideoFrame
from vision.change import ChangeGate
from vision.frames import Frame, ImageDecodeError, decode_image, encode_jpeg, fit_within
from vision.sampler import FrameSampler, sampled_frames
from vision.sources import (
    CameraSource,
    FrameSource,
    FrameSourceError,
    ImageFolderSource,
    VideoFileSource,
    open_source,
)

SMALL = (320, 180)  # for tests that need many frames: a quarter of the pixels to draw


def desk(seed: int = 0, words: str = "", size: tuple[int, int] = (640, 360), block: int | None = None) -> np.ndarray:
    """A desk-like frame: a gradient, two objects, optional words and a block at position ``block``,
    and sensor noise drawn from ``seed`` (so two seeds differ only by noise)."""
    width, height = size
    ramp = np.linspace(90, 200, width, dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    cv2.rectangle(image, (width // 12, height // 3), (width // 3, height * 5 // 6), (40, 120, 200), -1)
    cv2.circle(image, (width * 2 // 3, height // 2), height // 6, (60, 160, 60), -1)
    if words:
        cv2.putText(image, words, (width * 3 // 8, height // 4), cv2.FONT_HERSHEY_SIMPLEX, width / 800, (20, 20, 20), 2)
    if block is not None:
        left = (block * 37) % (width - width // 8)
        cv2.rectangle(image, (left, height * 2 // 3), (left + width // 8, height - 10), (200, 40, 160), -1)
    noise = np.random.default_rng(seed).integers(-5, 6, image.shape, dtype=np.int16)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


class FakeClock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class CountingSource(FrameSource):
    """A 30 fps "camera" over given images; counts how many frames were decoded."""

    def __init__(self, images: list[np.ndarray], fps: float = 30.0) -> None:
        self.images = images
        self.fps = fps
        self.index = -1
        self.retrieved = 0
        self.closed = False

    def grab(self) -> float | None:
        if self.index + 1 >= len(self.images):
            return None
        self.index += 1
        return self.index / self.fps

    def retrieve(self) -> Frame:
        self.retrieved += 1
        return Frame(self.images[self.index], self.index / self.fps, "counting")

    def close(self) -> None:
        self.closed = True


# -- change gate -------------------------------------------------------------


def test_gate_ignores_noise_recompression_and_shake_but_sees_a_new_word() -> None:
    gate = ChangeGate()
    assert gate.changed(desk(0, size=(1280, 720)))  # the first frame always passes
    for seed in range(1, 4):
        assert not gate.changed(desk(seed, size=(1280, 720))), gate.last_score
        assert not gate.changed(decode_image(encode_jpeg(desk(seed, size=(1280, 720)), 50))), gate.last_score
        assert not gate.changed(np.roll(desk(seed, size=(1280, 720)), 4, axis=1)), gate.last_score  # shake
    assert gate.changed(desk(9, words="OPEN", size=(1280, 720))), gate.last_score
    assert not gate.changed(desk(10, words="OPEN", size=(1280, 720)))


def test_an_unsmoothed_gate_sees_a_word_replaced_in_place() -> None:
    screen_gate = ChangeGate(smooth=False)
    assert screen_gate.changed(desk(0, words="OPEN", size=(1280, 720)))
    assert not screen_gate.changed(desk(1, words="OPEN", size=(1280, 720)))
    assert screen_gate.changed(desk(2, words="SHUT", size=(1280, 720))), screen_gate.last_score


def test_gate_sees_a_colour_change_that_keeps_brightness() -> None:
    gate = ChangeGate()
    red, blue = np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)
    red[:] = (0, 0, 200)
    blue[:] = (200, 0, 0)
    assert gate.changed(red)
    assert gate.changed(blue)


def test_gate_compares_with_the_last_accepted_frame_so_slow_drift_adds_up() -> None:
    gate = ChangeGate()
    base = desk(0)
    assert gate.changed(base)
    passed = [gate.changed(np.roll(base, shift, axis=1)) for shift in range(1, 60)]
    assert not any(passed[:2])  # a pixel or two (of 640) is shake
    assert any(passed)  # but a steady drift is noticed


def test_gate_on_jpeg_bytes_agrees_with_decoded_frames() -> None:
    on_bytes, on_arrays = ChangeGate(), ChangeGate()
    frames = [desk(0), desk(1), desk(2, words="HELLO"), desk(3, words="HELLO"), desk(4, block=3)]
    decisions_bytes = [on_bytes.changed(encode_jpeg(frame)) for frame in frames]
    decisions_arrays = [on_arrays.changed(frame) for frame in frames]
    assert decisions_bytes == decisions_arrays == [True, False, True, False, True]


def test_gate_rejects_bytes_that_are_not_an_image() -> None:
    with pytest.raises(ImageDecodeError, match="not a JPEG"):
        ChangeGate().changed(b"\xff\xd8\xff\xe0 not really")


# -- sampler -----------------------------------------------------------------


def test_rate_cap_one_frame_a_second_from_a_30_fps_camera() -> None:
    sampler = FrameSampler()
    sent = []
    for index in range(150):  # 5 seconds; the scene changes every frame
        timestamp = index / 30
        frame = Frame(desk(index, block=index, size=SMALL), timestamp)
        if (out := sampler.offer(frame)) is not None:
            sent.append(out.timestamp)
    assert sent == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert sampler.counts["sent"] == 5 and sampler.counts["rate_limited"] == 145


def test_a_static_scene_is_sent_once_and_rechecked_only_a_few_times_a_second() -> None:
    sampler = FrameSampler(recheck_s=0.2)
    source = CountingSource([desk(seed, size=SMALL) for seed in range(150)])  # 5 s of noise only
    sent = []
    while (out := sampler.next_frame(source)) is not None:
        sent.append(out.timestamp)
    assert sent == [0.0]
    # Decoded: the first frame, then one per recheck (every 0.2 s) at most, not 30 a second.
    assert source.retrieved <= 1 + 5 * 5
    assert sampler.counts["unchanged"] == source.retrieved - 1


def test_idle_rate_while_nobody_speaks_and_full_rate_while_they_do() -> None:
    sampler = FrameSampler(max_fps=1.0, idle_fps=0.2, speech_hold_s=3.0)
    speech = {0: True, 20: False, 125: True}  # at 0 s, 2 s and 12.5 s (frame index at 10 fps)
    sent = []
    for index in range(16 * 10):  # 10 fps for 16 s, every frame different
        timestamp = index / 10
        if index in speech:
            sampler.note_speech(speech[index], now=timestamp)
        if sampler.offer(Frame(desk(index, block=index, size=SMALL), timestamp)) is not None:
            sent.append(round(timestamp, 1))
    # 1 fps while speaking and for 3 s after (until 5.0), then one per 5 s; speech makes a frame
    # due at once (the question is probably about the view), then 1 fps again.
    assert sent == [0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 12.5, 13.5, 14.5, 15.5]


def test_never_told_about_speech_means_full_rate() -> None:
    sampler = FrameSampler(max_fps=2.0)
    assert sampler.interval(100.0) == 0.5


def test_resize_and_jpeg_quality() -> None:
    big = desk(0, words="resize me", size=(1920, 1080))
    low = FrameSampler(jpeg_quality=40).offer(Frame(big, 0.0))
    high = FrameSampler(jpeg_quality=95).offer(Frame(big, 0.0))
    assert low is not None and high is not None
    assert low.image.shape == (576, 1024, 3)
    assert decode_image(low.jpeg).shape == (576, 1024, 3)
    assert len(low.jpeg) < len(high.jpeg)
    assert low.to_video_frame() == VideoFrame(low.jpeg, "image/jpeg")
    portrait = fit_within(np.zeros((2000, 900, 3), np.uint8))
    assert portrait.shape == (1024, 461, 3)
    small = np.zeros((480, 640, 3), np.uint8)
    assert fit_within(small) is small  # never enlarged, not even copied


def test_sampler_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="idle_fps"):
        FrameSampler(max_fps=1, idle_fps=2)
    with pytest.raises(ValueError, match="quality"):
        FrameSampler(jpeg_quality=0)


async def test_sampled_frames_runs_a_source_off_the_event_loop_and_closes_it() -> None:
    images = [desk(index, block=index // 30, size=SMALL) for index in range(90)]
    source = CountingSource(images)
    sent = [frame.timestamp async for frame in sampled_frames(source)]
    assert sent == pytest.approx([0.0, 1.0, 2.0])
    assert source.closed


# -- sources -----------------------------------------------------------------


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """Three seconds at 10 fps; the block moves once a second."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 360))
    for index in range(30):
        writer.write(desk(index, block=index // 10))
    writer.release()
    return path


def test_video_file_frames_carry_their_media_time(video_file: Path) -> None:
    with VideoFileSource(video_file) as source:
        stamps = [frame.timestamp for frame in source.frames()]
    assert len(stamps) == 30
    assert stamps == pytest.approx([index / 10 for index in range(30)], abs=1e-3)


def test_video_file_through_the_sampler_gives_one_frame_per_word(video_file: Path) -> None:
    sampler = FrameSampler(max_fps=2.0, recheck_s=0.2)
    with VideoFileSource(video_file) as source:
        sent = []
        while (out := sampler.next_frame(source)) is not None:
            sent.append(out.timestamp)
    # 2 fps allowed, but the view changes once a second; a change is seen within one recheck.
    assert [round(stamp) for stamp in sent] == [0, 1, 2]
    assert all(0 <= stamp - round(stamp) <= 0.2 + 1e-6 for stamp in sent)


def test_video_file_in_real_time_is_paced_by_the_injected_clock(video_file: Path) -> None:
    clock = FakeClock(100.0)
    with VideoFileSource(video_file, realtime=True, clock=clock, sleep=clock.sleep) as source:
        stamps = [frame.timestamp for frame in source.frames()]
    assert stamps[0] == pytest.approx(100.0) and stamps[-1] == pytest.approx(102.9, abs=1e-3)
    assert sum(clock.sleeps) == pytest.approx(2.9, abs=1e-3)


def write_images(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"{index:03d}.png"
        cv2.imwrite(str(path), desk(index, block=index, size=(320, 240)))
        paths.append(path)
    return paths


def test_image_folder_in_name_order_at_the_given_interval(tmp_path: Path) -> None:
    write_images(tmp_path, 4)
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(ImageFolderSource(tmp_path, interval_s=0.5).frames())
    assert [frame.timestamp for frame in frames] == [0.0, 0.5, 1.0, 1.5]
    assert [Path(frame.source).name for frame in frames] == ["000.png", "001.png", "002.png", "003.png"]
    assert frames[0].size == (320, 240)


def test_a_broken_image_is_named_not_skipped(tmp_path: Path) -> None:
    write_images(tmp_path, 1)
    (tmp_path / "001.jpg").write_bytes(b"\xff\xd8 truncated")
    source = ImageFolderSource(tmp_path)
    assert source.read() is not None
    with pytest.raises(FrameSourceError, match=r"001\.jpg is not a readable image"):
        source.read()


def test_open_source_understands_its_descriptions(tmp_path: Path, video_file: Path) -> None:
    write_images(tmp_path, 2)
    assert isinstance(open_source(str(tmp_path)), ImageFolderSource)
    assert isinstance(open_source(str(tmp_path / "000.png")), ImageFolderSource)
    assert isinstance(open_source(str(video_file)), VideoFileSource)
    for spec, message in [
        ("camera:/dev/video99", "does not exist"),
        ("/dev/video99", "does not exist"),
        ("screen:left", "expected a monitor number"),
        (str(tmp_path / "missing.png"), "no image at"),
        (str(tmp_path / "missing.mp4"), "is not a camera, a screen"),
    ]:
        with pytest.raises(FrameSourceError, match=message):
            open_source(spec)


def test_a_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(FrameSourceError, match="cannot open camera 63"):
        CameraSource(63)


def test_empty_folder_and_unreadable_video_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FrameSourceError, match="holds no images"):
        ImageFolderSource(tmp_path)
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(FrameSourceError, match="cannot open"):
        VideoFileSource(bogus)


def test_bench_reports_each_sampler_outcome() -> None:
    report = bench_sampler(frames=5, size=SMALL)
    assert set(report) == {"rate_limited", "unchanged", "sent", "change_gate_on_jpeg"}
    assert all(timing.calls >= 5 and 0 <= timing.p50 <= timing.p95 for timing in report.values())
