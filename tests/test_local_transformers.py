"""The transformers engines (Whisper, neural voices) and where each model runs.

No transformers checkpoint of Whisper or of a voice is reachable offline, so
the checkpoints here are made at test time: tiny randomly initialised models
with the real tokenizer of the packaged Whisper tiny.en and a character
vocabulary for the voice. They check the engines' mechanics (decoding with
the cache against decoding without it, forced prefixes, word alignment,
synthesis, loading through ``assistant serve``), not recognition quality.
The engine tests run on the CPU; ``pytest --device cuda`` runs them on a
CUDA GPU for real (``make gpu-check`` does, with the checkpoints' makers in
``tests.support.checkpoints``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.genai import types

from assistant.backends import BackendUnavailable
from assistant.backends.local import LocalBackend, LocalConfig, devices
from assistant.backends.local.asr_transformers import (
    TransformersWhisperRecognizer,
    dynamic_time_warping,
    token_start_frames,
)
from assistant.backends.local.models import ModelMissing, hub_checkpoint, is_hub_checkpoint
from assistant.backends.local.tts import TransformersVoice, load_voices
from tests.conftest import Certificate
from tests.support.checkpoints import WHISPER_VOCABULARY, random_voice, random_whisper
from tests.test_local_e2e import CALCULATE, Conversation, reply_audio, sdk_client, serve_local, transcript


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def whisper_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer random Whisper with tiny.en's tokenizer, saved as transformers saves any checkpoint."""
    return random_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def voice_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random VITS voice (the MMS-TTS architecture) with a character vocabulary."""
    return random_voice(tmp_path_factory.mktemp("voice"))


@pytest.fixture(scope="module")
def recognizer(whisper_checkpoint: Path, model_device: str) -> TransformersWhisperRecognizer:
    return TransformersWhisperRecognizer(str(whisper_checkpoint), device=model_device)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16_000)) * 0.1).astype(np.float32)


def greedy_without_cache(
    recognizer: TransformersWhisperRecognizer,
    checkpoint: Path,
    audio: np.ndarray,
    prompt: list[int],
    limit: int,
    *,
    free_start: bool = True,
) -> list[int]:
    """The reference decoder: the whole sequence through the model at every step, no cache.

    The model is loaded afresh on the recognizer's device and in its dtype, so
    the two differ only in how they decode. ``free_start``: the first token
    may not be blank or the end (Whisper's rule when no prefix is forced).
    """
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    device, dtype = recognizer.device, recognizer._dtype
    model = WhisperForConditionalGeneration.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
    features = WhisperFeatureExtractor.from_pretrained(checkpoint)(audio, sampling_rate=16_000, return_tensors="pt")
    suppressed = [*model.generation_config.suppress_tokens, *range(50363, WHISPER_VOCABULARY)]
    tokens: list[int] = []
    with torch.inference_mode():
        encoded = model.get_encoder()(features.input_features.to(device, dtype))
        while len(prompt) + len(tokens) < limit:
            sequence = torch.tensor([prompt + tokens], device=device)
            logits = model(encoder_outputs=encoded, decoder_input_ids=sequence).logits[0, -1].float()
            logits[suppressed] = -float("inf")
            if not tokens and free_start:
                logits[model.generation_config.begin_suppress_tokens] = -float("inf")
            token = int(torch.argmax(logits))
            if token == 50256:
                break
            tokens.append(token)
    return tokens


def test_decoding_with_the_cache_matches_decoding_without_it(
    recognizer: TransformersWhisperRecognizer, whisper_checkpoint: Path
) -> None:
    audio = noise(2.0)
    text = recognizer.transcribe(audio)
    # start of transcript, no timestamps; the limit is the prompt, 8 tokens a second and 16 more
    expected = greedy_without_cache(recognizer, whisper_checkpoint, audio, [50257, 50362], 2 + 16 + 16)
    assert text and text == recognizer._tokenizer.decode(expected, skip_special_tokens=True)


def test_the_cache_goes_by_the_name_this_transformers_gives_it(recognizer: TransformersWhisperRecognizer) -> None:
    """transformers 5.24 renamed ``past_key_values`` to ``cache``; GPU images carry 5.17 (see make gpu-check)."""
    import transformers
    from packaging.version import Version

    renamed = Version(transformers.__version__) >= Version("5.24")
    assert recognizer._cache == ("cache" if renamed else "past_key_values")


def test_a_forced_prefix_continues_the_text_without_repeating_it(
    recognizer: TransformersWhisperRecognizer, whisper_checkpoint: Path
) -> None:
    audio = noise(2.0, seed=1)
    prefix_ids = recognizer._tokenizer.encode(" hello there", add_special_tokens=False).ids
    prompt = [50257, 50362, *prefix_ids]
    continued = greedy_without_cache(recognizer, whisper_checkpoint, audio, prompt, len(prompt) + 32, free_start=False)
    expected = recognizer._tokenizer.decode(continued, skip_special_tokens=True)
    assert recognizer.transcribe(audio, prefix="hello there") == expected
    assert not expected.startswith(" hello there")


def test_context_goes_before_the_transcript_as_previous_text(recognizer: TransformersWhisperRecognizer) -> None:
    prompt, start = recognizer._prompt("now", "earlier words")
    earlier = recognizer._tokenizer.encode(" earlier words", add_special_tokens=False).ids
    assert prompt[0] == 50360 and prompt[1 : 1 + len(earlier)] == earlier  # <|startofprev|>
    assert prompt[start] == 50257 and prompt[start + 1] == 50362  # then the transcript starts
    assert prompt[start + 2 :] == recognizer._tokenizer.encode(" now", add_special_tokens=False).ids


def test_word_ends_are_in_order_and_inside_the_audio(recognizer: TransformersWhisperRecognizer) -> None:
    audio = noise(3.0, seed=2)
    ends = recognizer.word_ends(audio, "turn the kitchen lights on, please.")
    assert len(ends) == 6
    assert ends == sorted(ends) and 0.0 <= ends[0] and ends[-1] <= 3.0
    assert recognizer.word_ends(audio, "  ") == []
    assert recognizer._model.config._attn_implementation == "sdpa"  # the fast kernel is back


def test_dynamic_time_warping_follows_attention_to_the_frames() -> None:
    # three tokens and end-of-text, each attending to its own stretch of 40 frames
    weights = np.full((2, 4, 40), 0.01)
    for token, (first, last) in enumerate([(0, 8), (8, 20), (20, 33), (33, 40)]):
        weights[:, token, first:last] = 1.0
    assert token_start_frames(weights).tolist() == [0, 8, 20, 33]
    rows, columns = dynamic_time_warping(np.array([[0.0, 0.0, 5.0, 5.0], [5.0, 5.0, 0.0, 0.0]]))
    assert rows.tolist() == [0, 0, 1, 1] and columns.tolist() == [0, 1, 2, 3]


def test_a_transformers_voice_speaks_at_its_own_rate(voice_checkpoint: Path, model_device: str) -> None:
    voice = TransformersVoice(str(voice_checkpoint), device=model_device)
    short, long = voice.synthesize("hello"), voice.synthesize("hello there, how are you today?")
    assert voice.sample_rate == 16_000 and voice.name == voice_checkpoint.name
    assert short.dtype == np.int16 and 0 < len(short) < len(long)
    assert len(voice.synthesize("   ")) == 0
    voices = load_voices(str(voice_checkpoint), device=model_device)
    assert isinstance(voices.default, TransformersVoice) and voices.select(voice_checkpoint.name) is voices.default


def test_the_path_for_transformers_before_5_18_speaks_as_the_pipeline_does(
    voice_checkpoint: Path, model_device: str
) -> None:
    """Before 5.18 the text-to-audio pipeline could not take a tokenizer's output; the path around it is equal."""
    import torch
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__) < Version("5.18"):
        pytest.skip("this transformers has the bug: only the path around it runs (the other voice tests take it)")
    voice = TransformersVoice(str(voice_checkpoint), device=model_device)
    assert not voice._tokenize_here
    torch.manual_seed(1)  # VITS draws noise for its durations and its flow
    through_the_pipeline = voice.synthesize("turn the lights on")
    voice._tokenize_here = True
    torch.manual_seed(1)
    assert np.array_equal(voice.synthesize("turn the lights on"), through_the_pipeline)


def test_checkpoints_are_told_apart_and_missing_ones_say_what_to_do(whisper_checkpoint: Path, tmp_path: Path) -> None:
    assert is_hub_checkpoint(str(whisper_checkpoint)) and is_hub_checkpoint("openai/whisper-small.en")
    assert not is_hub_checkpoint("tiny.en") and not is_hub_checkpoint("voices/joe.onnx")
    with pytest.raises(ModelMissing, match=r"hf download nobody/no-such-whisper"):
        hub_checkpoint("Whisper", "nobody/no-such-whisper", ("config.json",))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelMissing, match=r"lacks preprocessor_config.json, tokenizer.json"):
        TransformersWhisperRecognizer(str(tmp_path), device="cpu")


def test_each_runtime_gets_the_device_it_can_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_count", lambda module, attribute: 0)
    assert devices.ctranslate2_device("auto") == ("cpu", "int8")
    assert devices.torch_device("auto") == "cpu"
    with pytest.raises(ModelMissing, match=r"--device cuda: CTranslate2 sees no CUDA GPU; install"):
        devices.ctranslate2_device("cuda")
    with pytest.raises(ValueError, match="choose one of auto, cpu, cuda"):
        devices.torch_device("tpu")
    monkeypatch.setattr(devices, "_count", lambda module, attribute: 1)
    assert devices.ctranslate2_device("auto") == ("cuda", "float16")
    assert devices.ctranslate2_device("cpu") == ("cpu", "int8")
    assert devices.torch_device("cuda") == "cuda"
    import onnxruntime

    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert devices.onnxruntime_providers("auto")[0] == ("CUDAExecutionProvider" if cuda else "CPUExecutionProvider")
    assert devices.onnxruntime_providers("cpu") == ["CPUExecutionProvider"]


def test_a_missing_transformers_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelMissing, match=r"a transformers voice needs torch and transformers \(transformers is miss"):
        TransformersVoice("facebook/mms-tts-eng", device="cpu")


async def test_a_gpu_promised_but_absent_stops_the_server_with_the_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_count", lambda module, attribute: 0)
    backend = LocalBackend(LocalConfig(device="cuda", chat_model="none"), progress=lambda progress: None)
    with pytest.raises(BackendUnavailable, match=r"CTranslate2 sees no CUDA GPU; install the NVIDIA driver"):
        await backend.start()
    await backend.aclose()


@pytest.mark.slow
async def test_assistant_serve_runs_transformers_checkpoints(
    tls_certificate: Certificate, whisper_checkpoint: Path, voice_checkpoint: Path
) -> None:
    """Both checkpoints load by path in ``assistant serve``; a typed request is answered aloud by the voice."""
    answers: dict[str, dict[str, Any]] = {"calculate": {"output": {"expression": "12*7", "result": 84}}}
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        output_audio_transcription=types.AudioTranscriptionConfig(),
        tools=[types.Tool(function_declarations=[CALCULATE])],
    )
    options = ("--asr-model", str(whisper_checkpoint), "--voice", str(voice_checkpoint), "--llm-model", "none")
    with serve_local(tls_certificate, *options, "--device", "cpu") as port:
        async with sdk_client(port, tls_certificate).aio.live.connect(model="local", config=config) as session:
            async with Conversation(session, answers).running() as talk:
                await session.send_realtime_input(text="what's twelve times seven")
                await talk.until(lambda: talk.turns_done >= 1)
                heard = talk.heard.since()
    assert transcript(heard, "output_transcription").strip() == "12 times 7 is 84."
    assert len(reply_audio(heard)) > 24_000 * 2 * 0.2  # at least 0.2 s of 24 kHz speech from the voice
