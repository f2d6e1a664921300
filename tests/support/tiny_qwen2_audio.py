"""A tiny Qwen2-Audio checkpoint with random weights, built offline for the backend's tests.

Everything the real checkpoint has, at toy size: a byte-level BPE tokenizer trained here with
the model's special tokens, a `WhisperFeatureExtractor` whose mel bins match the audio encoder
(80 here, not the real model's 128, so a backend that does not read the checkpoint's extractor
fails), a `Qwen2AudioConfig`, and `save_pretrained` into a folder. Its text is garbage; tests
assert on structure, never on wording.

It is built in a child process (`python -m tests.support.tiny_qwen2_audio FOLDER`), which keeps
torch and transformers, and their warnings, out of the test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT

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
    run_builder(sys.executable, "tests.support.tiny_qwen2_audio", folder)
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


def _save(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        Qwen2Config,
        WhisperFeatureExtractor,
    )

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
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[
            t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_end|>")
        ],
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=MEL_BINS, sampling_rate=16_000),
        tokenizer=tokenizer,
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    # 1500 positions: the encoder takes 30 s of features (3000 frames), like the real one.
    audio = Qwen2AudioEncoderConfig(
        num_mel_bins=MEL_BINS,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        d_model=16,
        max_source_positions=1500,
    )
    config = Qwen2AudioConfig(
        audio_config=audio, text_config=text, audio_token_index=ids["<|AUDIO|>"]
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


if __name__ == "__main__":
    _save(Path(sys.argv[1]))
