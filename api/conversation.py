"""Turning OpenAI chat messages into one audiochat job.

The last user message (with any user messages right before it) is the question; earlier
user/assistant pairs are the job's history. Within a user message, text parts are the typed
question, `input_audio` parts are attached audio, and a text part that is exactly
`voice:<upload id>` (the original Audio-Chat client's convention) is a recording uploaded
earlier. System and developer messages are ignored: each backend has its own instructions.

Runs in a worker thread: it decodes base64, and may store an earlier turn's inline audio as an
upload so that the worker can hear it with the history.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from api.deps import Services
from api.openai_schemas import ChatCompletionRequest, ChatMessage, InputAudioPart, TextPart
from api.submission import IncomingAudio, submit_job
from api.upload_intake import store_upload
from shared.errors import InvalidAudio, MissingInput, UploadTooLarge
from shared.schemas import HistoryTurn, JobCreate, JobRead
from shared.upload_records import UploadRecord

logger = logging.getLogger(__name__)

VOICE_REFERENCE = re.compile(r"voice:([A-Za-z0-9_-]{1,64})")
# Older turns beyond these are dropped: the models' context is far shorter anyway.
MAX_HISTORY_TURNS = 32
# Decoded audio stays in memory up to this size, then goes to a temporary file.
_SPOOL_IN_MEMORY = 1024 * 1024
# Base64 is decoded this many characters at a time (a multiple of 4: whole groups).
_BASE64_PIECE = 4 * 256 * 1024


@dataclass
class UserTurn:
    """What one user turn (one or more consecutive user messages) holds."""

    texts: list[str] = field(default_factory=list)
    upload_ids: list[str] = field(default_factory=list)
    audio: list[IncomingAudio] = field(default_factory=list)


@dataclass
class ChatJob:
    """A submitted chat job, and the one upload it consists of (for `voice:<id>`), if any."""

    job: JobRead
    sole_upload_id: str | None


def _decode_audio(part: InputAudioPart, max_bytes: int) -> IncomingAudio:
    """The part's audio, decoded piece by piece into a spooled file (on disk beyond 1 MB), and
    its base64 text let go: the request never holds the audio twice over."""
    data = part.input_audio.data
    if len(data) * 3 // 4 > max_bytes:
        raise UploadTooLarge(f"the audio is larger than {max_bytes} bytes")
    # Outlives this function: submit_chat closes it once the job is submitted.
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        for start in range(0, len(data), _BASE64_PIECE):
            spool.write(base64.b64decode(data[start : start + _BASE64_PIECE], validate=True))
    except (binascii.Error, ValueError) as exc:
        spool.close()
        raise InvalidAudio("input_audio.data is not valid base64", field="messages") from exc
    part.input_audio.data = ""
    spool.seek(0)
    return IncomingAudio(cast(BinaryIO, spool), f"input_audio.{part.input_audio.format}")


def _add_content(turn: UserTurn, message: ChatMessage, max_bytes: int) -> None:
    content = message.content
    parts = [TextPart(type="text", text=content)] if isinstance(content, str) else content or []
    for part in parts:
        if isinstance(part, InputAudioPart):
            turn.audio.append(_decode_audio(part, max_bytes))
            continue
        reference = VOICE_REFERENCE.fullmatch(part.text.strip())
        if reference:
            turn.upload_ids.append(reference.group(1))
        elif part.text.strip():
            turn.texts.append(part.text.strip())


def _assistant_text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(p.text for p in message.content or [] if isinstance(p, TextPart))


def split_messages(
    messages: list[ChatMessage], max_bytes: int
) -> tuple[list[tuple[UserTurn, str]], UserTurn]:
    """Earlier (user turn, answer) pairs, and the user turn to answer now."""
    history: list[tuple[UserTurn, str]] = []
    current: UserTurn | None = None
    for message in messages:
        if message.role == "user":
            current = current or UserTurn()
            _add_content(current, message, max_bytes)
        elif message.role == "assistant":
            history.append((current or UserTurn(), _assistant_text(message)))
            current = None
    if current is None:
        raise MissingInput("the last message must be the user's", field="messages")
    return history[-MAX_HISTORY_TURNS:], current


def _history_turn(
    services: Services, tenant: str, turn: UserTurn, answer: str, stored: list[UploadRecord]
) -> HistoryTurn:
    """One earlier turn; its recording (the first, if several) goes with it as an upload."""
    record: UploadRecord | None = None
    if turn.upload_ids:
        record = services.uploads.require(turn.upload_ids[0], tenant, "messages")
    elif turn.audio:
        record = store_upload(services, tenant, turn.audio[0])
        stored.append(record)
    question = "\n".join(turn.texts) or (record.transcript if record else None) or ""
    return HistoryTurn(question=question, answer=answer, upload_id=record.id if record else None)


def submit_chat(services: Services, tenant: str, chat: ChatCompletionRequest) -> ChatJob:
    """Create and enqueue the job that answers this chat request."""
    max_bytes = services.settings.max_upload_bytes
    earlier, now = split_messages(chat.messages, max_bytes)
    stored: list[UploadRecord] = []
    try:
        history = [_history_turn(services, tenant, t, a, stored) for t, a in earlier]
        options = JobCreate(
            question="\n".join(now.texts) or None,
            model=chat.model,
            max_new_tokens=chat.max_completion_tokens or chat.max_tokens,
            temperature=chat.temperature,
            history=history,
            upload_ids=now.upload_ids,
        )
        job = submit_job(services, options, now.audio, tenant=tenant)
    except BaseException:
        for record in stored:
            _forget(services, record)
        raise
    finally:
        for audio in [a for turn, _ in earlier for a in turn.audio] + now.audio:
            audio.stream.close()
    sole = now.upload_ids[0] if len(now.upload_ids) == 1 and not now.audio else None
    return ChatJob(job, sole)


def _forget(services: Services, record: UploadRecord) -> None:
    """Remove an upload this request stored, after the request failed."""
    try:
        services.uploads.delete(record.id)
        services.store.delete(record.key)
    except Exception:
        logger.exception("upload_id=%s: removing it after a failed chat request failed", record.id)
