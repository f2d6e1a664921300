"""Stand-in for Qwen-Audio-Chat's `tokenization_qwen.py`: the same surface, a toy vocabulary.

Ids 0-255 are bytes; the chat tokens and the audio tokens (the timestamps `<|0.00|>` to
`<|30.00|>` among them) follow, as the special tokens follow the BPE ranks in the real one. Like
the real tokenizer, it takes audio only as a path inside the text (`<audio>path</audio>`),
decodes it with the ffmpeg command, and replaces the path by one pad token per audio token.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizer

ENDOFTEXT = "<|endoftext|>"
IMSTART = "<|im_start|>"
IMEND = "<|im_end|>"
AUDIO_START = "<audio>"
AUDIO_END = "</audio>"
AUDIO_PAD = "[[[AUDIO:modality]]]"
TIMESTAMPS = tuple(f"<|{i * 0.01:.2f}|>" for i in range(3001))
AUDIO_ST = (
    AUDIO_PAD,
    "<|startoftranscript|>",
    "<|startofanalysis|>",
    "<|transcribe|>",
    "<|en|>",
    "<|notimestamps|>",
    "<|timestamps|>",
    *TIMESTAMPS,
    AUDIO_START,
    AUDIO_END,
)
SPECIAL_IDS = {token: 256 + i for i, token in enumerate((ENDOFTEXT, IMSTART, IMEND, *AUDIO_ST))}
SPECIAL_TOKENS = {i: token for token, i in SPECIAL_IDS.items()}
VOCAB_SIZE = 256 + len(SPECIAL_IDS)
EOD_ID = SPECIAL_IDS[ENDOFTEXT]
_SPLIT = re.compile(r"(<\|[^|<>]*\|>|</?audio>|\[\[\[AUDIO:modality\]\]\])")
SAMPLE_RATE = 16_000
MAX_SAMPLES = 30 * SAMPLE_RATE


def encode(text: str) -> list[int]:
    """Token ids of `text`: special tokens by name, everything else byte by byte."""
    ids: list[int] = []
    for part in _SPLIT.split(text):
        if part in SPECIAL_IDS:
            ids.append(SPECIAL_IDS[part])
        else:
            ids.extend(part.encode("utf-8"))
    return ids


def load_audio(path: str) -> np.ndarray:
    """16 kHz mono samples of `path`, decoded by the ffmpeg command as the real code does."""
    command = ["ffmpeg", "-nostdin", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "16000", "-"]
    out = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16).flatten().astype(np.float32) / 32768.0


class QWenTokenizer(PreTrainedTokenizer):
    vocab_files_names: dict[str, str] = {}  # noqa: RUF012 (transformers reads it as is)

    def __init__(self, errors: str = "replace", **kwargs: Any) -> None:
        self.errors = errors
        self.audio_start_tag = AUDIO_START
        self.audio_end_tag = AUDIO_END
        self.AUDIO_ST = AUDIO_ST
        self.eod_id = EOD_ID
        self.im_start_id = SPECIAL_IDS[IMSTART]
        self.im_end_id = SPECIAL_IDS[IMEND]
        self.audio_start_id = SPECIAL_IDS[AUDIO_START]
        self.audio_end_id = SPECIAL_IDS[AUDIO_END]
        self.audio_pad_id = SPECIAL_IDS[AUDIO_PAD]
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    def __len__(self) -> int:
        return VOCAB_SIZE

    def get_vocab(self) -> dict[str, int]:
        return {**{bytes([i]).decode("latin-1"): i for i in range(256)}, **SPECIAL_IDS}

    def _add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int:
        return 0

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple:
        return ()

    def tokenize(self, text: str, allowed_special: Any = "all", **kwargs: Any) -> list[Any]:
        audio_info = kwargs.get("audio_info")
        tokens: list[Any] = []
        for part in _SPLIT.split(text):
            if part in SPECIAL_IDS:
                tokens.append(part)
            else:
                tokens.extend(bytes([b]) for b in part.encode("utf-8"))
        return self._pad_audio(tokens, audio_info)

    def _pad_audio(self, tokens: list[Any], audio_info: dict[str, Any] | None) -> list[Any]:
        """Each `<audio>path</audio>` becomes `<audio>`, one pad per audio token, `</audio>`."""
        out: list[Any] = []
        index = 0
        inside = False
        for token in tokens:
            if token == AUDIO_START:
                if audio_info is None:
                    raise ValueError("text with <audio> needs audio_info (process_audio)")
                span = audio_info["audio_span_tokens"][index]
                out += [AUDIO_START] + [AUDIO_PAD] * (span - 2)
                inside = True
            elif token == AUDIO_END:
                out.append(AUDIO_END)
                inside = False
                index += 1
            elif not inside:
                out.append(token)
        return out

    def convert_tokens_to_ids(self, tokens: Any) -> Any:
        if isinstance(tokens, (str, bytes)):
            return self._convert_token_to_id(tokens)
        return [self._convert_token_to_id(token) for token in tokens]

    def _convert_token_to_id(self, token: Any) -> int:
        if isinstance(token, bytes):
            return token[0]
        return SPECIAL_IDS[token]

    def _convert_id_to_token(self, index: int) -> Any:
        return bytes([index]) if index < 256 else SPECIAL_TOKENS[index]

    def convert_tokens_to_string(self, tokens: list[Any]) -> str:
        data = b"".join(t if isinstance(t, bytes) else t.encode("utf-8") for t in tokens)
        return data.decode("utf-8", errors=self.errors)

    def _decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        errors: str | None = None,
        **kwargs: Any,
    ) -> str:
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        audio_info = kwargs.get("audio_info")
        data = b""
        urls = iter(audio_info["audio_urls"]) if audio_info else iter(())
        for i in ids:
            if i == self.audio_pad_id and audio_info is not None:
                continue
            if skip_special_tokens and i >= EOD_ID:
                continue
            if i < 256:
                data += bytes([i])
            else:
                data += SPECIAL_TOKENS[i].encode("utf-8")
                if i == self.audio_start_id and audio_info is not None:
                    data += next(urls).encode("utf-8")
        return data.decode("utf-8", errors=errors or self.errors)

    def from_list_format(self, list_format: list[dict[str, str]]) -> str:
        text = ""
        audios = 0
        for item in list_format:
            if "audio" in item:
                audios += 1
                text += f"Audio {audios}:{AUDIO_START}{item['audio']}{AUDIO_END}\n"
            elif "text" in item:
                text += item["text"]
            else:
                raise ValueError(f"unsupported element: {item}")
        return text

    def process_audio(self, text: str) -> dict[str, Any] | None:
        urls = re.findall(f"{AUDIO_START}(.*?){AUDIO_END}", text)
        if not urls:
            return None
        waves, lengths, spans = [], [], []
        for url in urls:
            audio = load_audio(url)[:MAX_SAMPLES]
            frames = len(audio) // 160
            after_cnn = (frames - 1) // 2 + 1
            tokens = (after_cnn - 2) // 2 + 1
            waves.append(np.pad(audio, (0, MAX_SAMPLES - len(audio))))
            lengths.append([after_cnn, tokens])
            spans.append(tokens + 2)  # with <audio> and </audio>
        return {
            "input_audios": torch.from_numpy(np.stack(waves)),
            "input_audio_lengths": torch.IntTensor(lengths),
            "audio_span_tokens": spans,
            "audio_urls": urls,
        }
