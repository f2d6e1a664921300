"""What the Qwen-Audio backends ask their models, and which audio a model gets to hear.

Both models hear at most 30 s of each audio input. The transcribe stage cuts longer audio into
windows (worker/windows.py); the answer stage gives the model the audio itself when every part
fits, and otherwise the whole transcript as text, so nothing is cut off silently.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Generator, Iterator

from shared.errors import ModelError
from worker.audio import SAMPLE_RATE, Audio
from worker.backends.base import AnswerRequest, GenerationStats, TranscriptPiece

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You are a helpful assistant."


def seconds(audio: Audio) -> float:
    return len(audio) / SAMPLE_RATE


def fits(audio: Audio, max_seconds: float) -> bool:
    """Whether the model hears all of `audio` (its feature extractor cuts the rest)."""
    return len(audio) <= math.ceil(max_seconds * SAMPLE_RATE)


def check_one_window(audio: Audio, max_seconds: float) -> None:
    """Refuse audio the model cannot hear at once: the transcribe stage windows it first."""
    if not fits(audio, max_seconds):
        raise ModelError(
            f"{seconds(audio):.1f} s of audio is more than the model hears at once "
            f"({max_seconds:g} s); split it into windows first"
        )


def heard_audio(request: AnswerRequest, max_seconds: float) -> list[Audio]:
    """The job's audio parts if the model can hear every one of them; none otherwise, and the
    model answers from the transcript (see `question_text`)."""
    if request.audios and all(fits(audio, max_seconds) for audio in request.audios):
        return list(request.audios)
    if request.audios:
        logger.info("audio longer than %g s: answering from the transcript", max_seconds)
    return []


def transcript_pieces(
    pieces: Generator[str | GenerationStats, None, None],
) -> Iterator[TranscriptPiece]:
    """A generated transcript as the pipeline takes it: the model gives no times, so the
    pipeline makes the window one segment. Closing this closes `pieces`, which stops the row."""
    try:
        for piece in pieces:
            if isinstance(piece, str):
                yield TranscriptPiece(piece)
    finally:
        pieces.close()


def question_text(request: AnswerRequest, hears: bool) -> str:
    """The text of the current user turn; empty when the model hears a spoken question."""
    spoken = request.transcript is not None and request.question == request.transcript
    if hears:
        return "" if spoken else request.question
    if request.transcript and not spoken:
        return f'Here is a transcript of the audio:\n"{request.transcript}"\n\n{request.question}'
    return request.question


def defuse(text: str, forms: tuple[str, ...]) -> str:
    """`text` with each of `forms` (a tokenizer's special tokens, its audio tags) broken by a
    word joiner after its first character: it reads the same, but the tokenizer no longer takes
    it for the control token or tag it spells, so a question cannot end its own turn, claim
    audio it does not have, or name a file for the model to read."""
    for form in forms:
        if form in text:
            text = text.replace(form, form[0] + "\u2060" + form[1:])
    return text


def with_hints(instruction: str, language: str | None, prompt: str | None) -> str:
    """A transcription instruction with the job's language and spelling hints, if any."""
    hints = [instruction]
    if language:
        hints.append(f"The speech is in the language with ISO 639 code '{language}'.")
    if prompt:
        hints.append(f"Spell names and terms as in this text: {prompt}")
    return " ".join(hints)


def transcript_token_budget(audio_seconds: float) -> int:
    """The most tokens a window's transcript may take: fast speech is about 4 words, or 6
    tokens, a second; the rest is headroom. Bounds a model that never stops."""
    return 16 + math.ceil(8 * audio_seconds)
