"""A tiny Qwen2-Audio checkpoint with random weights, built offline for the backend's tests.

Everything the real checkpoint has, at toy size: a byte-level BPE tokenizer trained here with
the model's special tokens, a `WhisperFeatureExtractor` whose mel bins match the audio encoder
(80 here, not the real model's 128, so a backend that does not read the checkpoint's extractor
fails), a `Qwen2AudioConfig`, and `save_pretrained` into a folder. Its text is garbage; tests
assert on structure, never on wording.

It is built in a child process (`python -m testbed.tiny_qwen2_audio FOLDER`), which keeps
torch and transformers, and their warnings, out of the test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Not from testbed.processes: bench/gpu_check.py imports this where Redis is not installed.
from testbed.paths import REPO_ROOT

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
]
MEL_BINS = 80
# Words the tokenizer learns merges from; anything else is spelled out in bytes.
CORPUS = [
    "You are a helpful assistant.",
    "system user assistant",
    "Audio 1: Audio 2: what does the person say?",
    "Transcribe the speech in this audio word for word. Reply with the transcript only.",
    "Here is a transcript of the audio. The speech is in the language with ISO 639 code",
]


def build(folder: Path) -> Path:
    """Build the checkpoint into `folder` (in a child process) and return the folder."""
    run_builder(sys.executable, "testbed.tiny_qwen2_audio", folder)
    return folder


def run_builder(python: str, module: str, folder: Path, env: dict[str, str] | None = None) -> None:
    """Run `python -m module folder` from the repository root; fail with its output."""
    done = subprocess.run(
        [python, "-m", module, str(folder)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building {folder} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


# The real Qwen2-Audio-7B-Instruct's numbers (its config.json and transformers' defaults):
# 8.4 billion parameters, 16.8 GB in bf16.
FULL_SIZE_TEXT = {
    "vocab_size": 156_032,
    "hidden_size": 4096,
    "intermediate_size": 11_008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
}
FULL_SIZE_AUDIO = {
    "num_mel_bins": 128,
    "encoder_layers": 32,
    "encoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "d_model": 1280,
    "max_source_positions": 1500,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
}
# 1500 positions: the encoder takes 30 s of features (3000 frames), like the real one.
TINY_AUDIO = {
    "num_mel_bins": MEL_BINS,
    "encoder_layers": 1,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "d_model": 16,
    "max_source_positions": 1500,
}


def _bpe_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained here, with the model's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 8, trainer)
    return bpe


def _word_tokenizer(size: int) -> Any:
    """A tokenizer with `size` entries, each a word: a random model's every token decodes to
    text, so streaming can be timed at full vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL_TOKENS), size)})
    words = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return words


def build_processor(full_size: bool = False) -> Any:
    """The checkpoint's processor: its tokenizer and a feature extractor of its mel bins."""
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    backend = _word_tokenizer(FULL_SIZE_TEXT["vocab_size"]) if full_size else _bpe_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[
            t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_end|>")
        ],
    )
    audio_sizes = FULL_SIZE_AUDIO if full_size else TINY_AUDIO
    return Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(
            feature_size=audio_sizes["num_mel_bins"], sampling_rate=16_000
        ),
        tokenizer=tokenizer,
    )


def build_model(processor: Any, full_size: bool = False, device: str = "cpu") -> Any:
    """A model with random weights for `processor`'s tokenizer, made on `device` (bf16 at full
    size: 17 GB of memory, not 34, and never on disk)."""
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2Config,
    )

    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    audio_sizes = FULL_SIZE_AUDIO if full_size else TINY_AUDIO
    text_sizes = FULL_SIZE_TEXT if full_size else {**TINY_TEXT, "vocab_size": len(tokenizer)}
    text = Qwen2Config(
        **text_sizes,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    config = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(**audio_sizes),
        text_config=text,
        audio_token_index=ids["<|AUDIO|>"],
    )
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if full_size else previous)
    try:
        with torch.device(device):
            model = Qwen2AudioForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    # A random model at full size would stop at random: it gets no end token, so it runs to
    # max_new_tokens and tokens per second can be measured.
    stops = None if full_size else [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config = GenerationConfig(
        eos_token_id=stops, pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"]
    )
    return model.eval()


def save_checkpoint(folder: Path, full_size: bool = False) -> None:
    """Build the checkpoint in this process: toy size, or the real model's size (bf16)."""
    processor = build_processor(full_size)
    model = build_model(processor, full_size)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


if __name__ == "__main__":
    save_checkpoint(Path(sys.argv[1]))
