"""Whisper through transformers and torch: any Hugging Face Whisper, on a GPU when there is one.

faster-whisper is the CPU default (see ``asr``); this engine is for the
checkpoints people fine-tune and publish in the transformers format
(``openai/whisper-small.en``, distil-whisper, a language-specific
fine-tune) and for GPUs, where a 30 s encoder pass costs milliseconds.
It implements the same ``Recognizer`` as the CTranslate2 engine, so the
streaming logic (local agreement, forced prefixes, bounded windows) is
shared and only the model calls differ:

- ``transcribe`` is a greedy decode with the key/value cache, written out
  here rather than through ``generate`` because the streaming transcript
  needs exact control of the forced prefix (the committed words), the
  previous-text prompt and Whisper's no-speech probability, which
  ``generate`` exposes differently in every release.
- ``word_ends`` aligns words to audio the way Whisper's own code does:
  the cross-attention of the alignment heads, normalised and median
  filtered, then dynamic time warping from text tokens to audio frames.

transformers' Whisper encoder accepts only full 30 s windows, so the short
window trick of the CTranslate2 engine does not apply: on a CPU this
engine is several times slower per call than faster-whisper.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np

from assistant.backends.local.asr import SAMPLE_RATE, TOKENS_PER_SECOND, Heard, drop_repeats, split_words
from assistant.backends.local.devices import torch_runtime
from assistant.backends.local.models import ModelMissing, ProgressCallback, hub_checkpoint, loading, log_progress

SECONDS_PER_FRAME = 0.02  # one encoder frame: two 10 ms mel frames
MEDIAN_FILTER_WIDTH = 7
NO_SPEECH_PROBABILITY = 0.6
NO_SPEECH_LOGPROB = -1.0
REQUIRED_FILES = ("config.json", "preprocessor_config.json", "tokenizer.json")


class TransformersWhisperRecognizer:
    """A transformers Whisper behind the ``Recognizer`` interface.

    One instance serves every session; a lock keeps its calls one at a time
    (the backend also runs them on a single ASR thread).
    """

    def __init__(
        self,
        name: str,
        *,
        device: str = "auto",
        threads: int = 2,
        allow_download: bool = False,
        progress: ProgressCallback = log_progress,
    ) -> None:
        torch, self.device = torch_runtime(device, threads, "Whisper through transformers")
        from tokenizers import Tokenizer
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

        source = hub_checkpoint("Whisper", name, REQUIRED_FILES, allow_download)
        self.name = name
        self._torch = torch
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        with loading("speech recognition", name, source, progress):
            model: Any = WhisperForConditionalGeneration.from_pretrained(source, dtype=dtype)
            self._model = model.to(self.device).eval()
            self._features = WhisperFeatureExtractor.from_pretrained(source)
            self._tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        self._dtype = dtype
        self._special = _SpecialTokens(self._tokenizer, self._model.config.vocab_size)
        generation = self._model.generation_config
        self._suppress = [*(getattr(generation, "suppress_tokens", None) or [])]
        self._suppress_at_start = [*(getattr(generation, "begin_suppress_tokens", None) or [])]
        self._alignment_heads = _alignment_heads(self._model.config, getattr(generation, "alignment_heads", None))
        self._cache = _cache_keyword(self._model)
        self._lock = threading.Lock()

    def _encode(self, audio: np.ndarray) -> Any:
        features = self._features(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        return self._model.get_encoder()(features.to(self.device, self._dtype))

    def _prompt(self, prefix: str, context: str) -> tuple[list[int], int]:
        """Decoder input ids and the index of the start-of-transcript token in them."""
        special = self._special
        previous = [special.start_of_previous, *self._ids(" " + context)] if context else []
        start = [*previous, *special.start_sequence, special.no_timestamps]
        return [*start, *self._ids(" " + prefix.strip() if prefix else "")], len(previous)

    def _ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else []

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        return self.hear(audio, prefix, context).text

    def hear(self, audio: np.ndarray, prefix: str = "", context: str = "") -> Heard:
        if len(audio) == 0:
            return Heard("")
        duration = len(audio) / SAMPLE_RATE
        prompt, start_index = self._prompt(prefix, context)
        limit = min(self._model.config.max_target_positions, len(prompt) + int(duration * TOKENS_PER_SECOND) + 16)
        with self._lock, self._torch.inference_mode():
            tokens, no_speech, mean_logprob = self._greedy(self._encode(audio), prompt, start_index, limit, not prefix)
        if not prefix and no_speech > NO_SPEECH_PROBABILITY and mean_logprob < NO_SPEECH_LOGPROB:
            return Heard("", mean_logprob, no_speech)  # Whisper's own rule for "this was not speech"
        text = drop_repeats(self._tokenizer.decode(tokens, skip_special_tokens=True), prefix)
        return Heard(text, mean_logprob, no_speech)

    def _greedy(
        self, encoded: Any, prompt: list[int], start_index: int, limit: int, first_is_free: bool
    ) -> tuple[list[int], float, float]:
        """Greedy decoding with the cache: new tokens, no-speech probability, mean log-probability."""
        torch = self._torch
        special = self._special
        inputs = torch.tensor([prompt], device=self.device)
        output = self._model(encoder_outputs=encoded, decoder_input_ids=inputs, use_cache=True)
        no_speech = float(torch.softmax(output.logits[0, start_index].float(), -1)[special.no_speech])
        tokens: list[int] = []
        logprob_sum = 0.0
        while len(prompt) + len(tokens) < limit:
            logits = output.logits[0, -1].float()
            logits[self._suppress] = -float("inf")
            logits[special.timestamp_begin :] = -float("inf")
            if not tokens and first_is_free:
                logits[self._suppress_at_start] = -float("inf")
            logprobs = torch.log_softmax(logits, -1)
            token = int(torch.argmax(logprobs))
            if token == special.end_of_text:
                break
            logprob_sum += float(logprobs[token])
            tokens.append(token)
            step = torch.tensor([[token]], device=self.device)
            cache = {self._cache: getattr(output, self._cache)}
            output = self._model(encoder_outputs=encoded, decoder_input_ids=step, use_cache=True, **cache)
        return tokens, no_speech, logprob_sum / max(len(tokens), 1)

    def word_ends(self, audio: np.ndarray, text: str, context: str = "") -> list[float]:
        words = [word.strip() for word in split_words(text.strip())]
        word_tokens = [self._ids(" " + word) for word in words]
        text_tokens = [token for tokens in word_tokens for token in tokens]
        if not text_tokens:
            return []
        prompt, _ = self._prompt("", "")
        sequence = [*prompt, *text_tokens, self._special.end_of_text]
        frames = max(1, round(len(audio) / SAMPLE_RATE / SECONDS_PER_FRAME))
        with self._lock, self._torch.inference_mode():
            encoded = self._encode(audio)
            kernel = self._model.config._attn_implementation
            self._model.set_attn_implementation("eager")  # attention weights need the eager kernel
            try:
                output = self._model(
                    encoder_outputs=encoded,
                    decoder_input_ids=self._torch.tensor([sequence], device=self.device),
                    output_attentions=True,
                )
            finally:
                self._model.set_attn_implementation(kernel)
        weights = np.stack(
            [
                output.cross_attentions[layer][0, head, len(prompt) :, :frames].float().cpu().numpy()
                for layer, head in self._alignment_heads
            ]
        )
        token_starts = token_start_frames(weights)  # one per text token, then one for end-of-text
        ends: list[float] = []
        position = 0
        for tokens in word_tokens:
            position += len(tokens)
            ends.append(float(token_starts[position]) * SECONDS_PER_FRAME)
        return ends


class _SpecialTokens:
    """Whisper's control tokens, read from the tokenizer so any checkpoint's ids are right."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        def required(token: str) -> int:
            found = tokenizer.token_to_id(token)
            if found is None:
                raise ModelMissing(f"this Whisper tokenizer has no {token} token")
            return int(found)

        self.end_of_text = required("<|endoftext|>")
        self.start_of_previous = required("<|startofprev|>")
        self.no_timestamps = required("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1  # timestamps follow <|notimestamps|> in every Whisper
        no_speech = tokenizer.token_to_id("<|nospeech|>")
        self.no_speech = int(no_speech if no_speech is not None else required("<|nocaptions|>"))
        start = required("<|startoftranscript|>")
        english = tokenizer.token_to_id("<|en|>")
        multilingual = vocab_size >= 51865 and english is not None
        self.start_sequence = [start, int(english), required("<|transcribe|>")] if multilingual else [start]


def _cache_keyword(model: Any) -> str:
    """The name of the key/value cache, as argument and output: ``cache`` since transformers 5.24.

    Earlier releases (GPU images carried 5.17 late in 2026) call it
    ``past_key_values``; later ones still accept that argument until 5.40 but
    return the cache only as ``cache``, so the name is read from the model.
    """
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _alignment_heads(config: Any, declared: list[list[int]] | None) -> list[tuple[int, int]]:
    """The cross-attention heads that follow the audio; the upper half of the decoder when undeclared."""
    if declared:
        return [(int(layer), int(head)) for layer, head in declared]
    layers = config.decoder_layers
    return [(layer, head) for layer in range(layers // 2, layers) for head in range(config.decoder_attention_heads)]


def token_start_frames(weights: np.ndarray) -> np.ndarray:
    """Per token, the first audio frame aligned to it (heads x tokens x frames attention in).

    Each head's weights are standardised over frames and median filtered,
    the heads averaged, and a monotonic path found by dynamic time warping:
    a token starts where the path first reaches its row.
    """
    standardised = (weights - weights.mean(axis=-1, keepdims=True)) / (weights.std(axis=-1, keepdims=True) + 1e-6)
    matrix = _median_filter(standardised, MEDIAN_FILTER_WIDTH).mean(axis=0)
    rows, columns = dynamic_time_warping(-matrix)
    starts = np.zeros(matrix.shape[0], dtype=np.int64)
    first_step = np.flatnonzero(np.diff(rows, prepend=-1))
    starts[rows[first_step]] = columns[first_step]
    return starts


def _median_filter(values: np.ndarray, width: int) -> np.ndarray:
    """Median over a sliding window on the last axis, edges padded by reflection."""
    if values.shape[-1] <= width // 2:
        return values
    pad = width // 2
    padded = np.pad(values, [(0, 0)] * (values.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1)


def dynamic_time_warping(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path from the top-left to the bottom-right cell: row and column indices."""
    rows, columns = cost.shape
    infinity = float("inf")
    previous = [0.0] + [infinity] * columns  # cheapest totals of the row above, column 0 as the border
    moves = np.zeros((rows + 1, columns + 1), dtype=np.int8)  # 0 diagonal, 1 down (next token), 2 right (next frame)
    for row in range(1, rows + 1):
        current = [infinity] * (columns + 1)
        row_cost = cost[row - 1].tolist()
        row_moves = moves[row]
        for column in range(1, columns + 1):
            diagonal, down, right = previous[column - 1], previous[column], current[column - 1]
            if diagonal <= down and diagonal <= right:
                best, move = diagonal, 0
            elif down <= right:
                best, move = down, 1
            else:
                best, move = right, 2
            current[column] = row_cost[column - 1] + best
            row_moves[column] = move
        previous = current
    path_rows: list[int] = []
    path_columns: list[int] = []
    row, column = rows, columns
    while row > 0 and column > 0:
        path_rows.append(row - 1)
        path_columns.append(column - 1)
        move = int(moves[row, column])
        if move == 0:
            row, column = row - 1, column - 1
        elif move == 1:
            row -= 1
        else:
            column -= 1
    return np.array(path_rows[::-1]), np.array(path_columns[::-1])
