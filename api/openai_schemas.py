"""The OpenAI wire shapes audiochat speaks: chat completions, transcriptions, models, uploads.

Requests ignore fields audiochat has no use for (OpenAI clients send many), and refuse what it
cannot honour (tools, images, several choices). Responses carry OpenAI's fields, plus
`job_id` and `transcript`, which OpenAI clients ignore.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- chat completions: request -------------------------------------------------------------


class InputAudio(BaseModel):
    data: str = Field(description="base64-encoded audio")
    format: Literal["wav", "mp3"]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class InputAudioPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | InputAudioPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=64)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int | None = Field(default=None, ge=1, le=1, description="only 1 is supported")


# --- chat completions: response ------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def usage_of(answer_completed: dict[str, Any]) -> Usage:
    """Token counts from an `answer.completed` event (0 where the backend gave none)."""
    prompt = int(answer_completed.get("prompt_tokens") or 0)
    completion = int(answer_completed.get("completion_tokens") or 0)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    # audiochat's additions: the job that did the work, and what the voice message said.
    job_id: str
    transcript: str | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    job_id: str
    transcript: str | None = None


# --- transcriptions ------------------------------------------------------------------------

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]


class TranscriptionForm(BaseModel):
    """The form fields of `POST /v1/audio/transcriptions`, besides `file`."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=64)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    prompt: str | None = Field(default=None, max_length=2000)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    response_format: ResponseFormat = "json"
    stream: bool = False
    timestamp_granularities: list[Literal["segment", "word"]] = Field(
        default_factory=list,
        description="`word` adds each word's times to `verbose_json` where the model gives them",
    )


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class Transcription(BaseModel):
    text: str
    usage: DurationUsage
    job_id: str


class VerboseSegment(BaseModel):
    id: int
    # Whisper's seek offset, in 10 ms frames.
    seek: int
    start: float
    end: float
    text: str
    # audiochat does not report token ids or decoding statistics: these are always empty/0.
    tokens: list[int] = Field(default_factory=list)
    temperature: float
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    # What the model says the speech is in; else the asked language; else `unknown`.
    language: str
    duration: float
    text: str
    # With `timestamp_granularities[]`: segments unless only `word` is asked, words if it is.
    segments: list[VerboseSegment] | None = None
    words: list[VerboseWord] | None = None
    usage: DurationUsage
    job_id: str


# --- models and uploads --------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "audiochat"
    # audiochat's additions: how many live workers serve the model, and on which devices.
    workers: int
    devices: list[str]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class PresignedForm(BaseModel):
    """Where and how to send the file of a presigned upload: a multipart POST of `fields`, then
    the file as the last part, named `file`."""

    url: str
    method: Literal["POST"] = "POST"
    fields: dict[str, str]
    max_bytes: int
    expires_at: int


class DirectUploadCreate(BaseModel):
    """`POST /v1/uploads` as JSON: ask for a presigned form instead of sending the file."""

    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(default=None, max_length=255)
    # The file's size, if known: too large is refused now rather than by the store.
    bytes: int | None = Field(default=None, ge=1)


class UploadRead(BaseModel):
    """A stored recording; refer to it as `voice:<id>` in chat or in `upload_ids` of a job."""

    id: str
    object: Literal["upload"] = "upload"
    # `pending` until a presigned upload has been checked (when a job first names it).
    status: Literal["ready", "pending"] = "ready"
    filename: str | None
    bytes: int | None
    seconds: float | None
    created_at: int
    expires_at: int
    # Only in the answer that makes a presigned upload.
    upload: PresignedForm | None = None
