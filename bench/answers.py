"""Suite 5: what the embedded models answer to short questions (issue 15), through audiochat.

The question set is bench/questions.json: typed questions; some of them spoken by espeak-ng in
two voices at two speeds; questions about the LibriSpeech clips in ../shared/audio. Each job
goes through one gateway and one embedded worker (POST → `done` on the SSE stream), one at a
time. Configurations, each a worker of its own:

- `before`: the settings audiochat had before issue 15 (no system prompt of its own, greedy
  Whisper, repetition penalty 1.1, 256 new tokens), reproduced with today's settings;
- `after`: the defaults;
- Whisper settings on the spoken questions alone (transcription jobs);
- models a user brings (bench/own_models.py): their cost in memory and time, and what they do.

Scoring is bench/scoring.py's. Timings are only comparable within one run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import own_models
from bench.harness import (
    SHARED_AUDIO,
    WORK_DIR,
    Worker,
    base_env,
    espeak_clip,
    gateway,
    log,
    machine_info,
    peak_rss_bytes,
    services,
    worker,
)
from bench.scoring import first_sentence, matches, summarise, word_count, word_error_rate
from bench.stats import percentile

QUESTIONS = Path(__file__).with_name("questions.json")
BEFORE_MAX_NEW_TOKENS = 256
BEFORE = {
    "AUDIOCHAT_EMBEDDED__SYSTEM_PROMPT": "",
    "AUDIOCHAT_EMBEDDED__ANSWER_EXAMPLES": "false",
    "AUDIOCHAT_EMBEDDED__REPETITION_PENALTY": "1.1",
    "AUDIOCHAT_EMBEDDED__NO_REPEAT_NGRAM_SIZE": "0",
    "AUDIOCHAT_EMBEDDED__BEAM_SIZE": "1",
}
# Questions of another kind than the set's, so the prompt hints at questions, not answers.
QUESTION_STYLE_PROMPT = (
    "How far away is the Moon? Who invented the telephone? Why is the sea salty?"
)
WHISPER_VARIANTS = {
    "greedy (before)": {"AUDIOCHAT_EMBEDDED__BEAM_SIZE": "1"},
    "beam 5 (default)": {},
    "beam 5 + question-style prompt": {
        "AUDIOCHAT_EMBEDDED__TRANSCRIPTION_PROMPT": QUESTION_STYLE_PROMPT
    },
    "beam 5 + VAD": {"AUDIOCHAT_EMBEDDED__VAD_FILTER": "true"},
    "greedy, no temperature fallback": {
        "AUDIOCHAT_EMBEDDED__BEAM_SIZE": "1",
        "AUDIOCHAT_EMBEDDED__TEMPERATURE_FALLBACK": "false",
    },
}
GERMAN = ("Wie spät ist es? Ich möchte wissen, wann der Zug nach Berlin fährt.", "de")


@dataclass(frozen=True)
class Item:
    """One job of the set: a typed or spoken question, or a question about a recording."""

    kind: str  # "typed", "spoken" or "clip"
    question: str
    answers: tuple[str, ...]
    category: str = ""
    audio: str | None = None
    voice: str | None = None
    wpm: int | None = None


def items(quick: bool) -> list[Item]:
    """The question set, spoken audio made on the spot; `quick`: one question a category, one
    voice at one speed, one recording."""
    data = json.loads(QUESTIONS.read_text())
    typed = data["typed"]
    if quick:
        categories = {q["category"]: q for q in reversed(typed) if q.get("spoken")}
        typed = list(categories.values())
    out = [Item("typed", q["question"], tuple(q["answers"]), q["category"]) for q in typed]
    voices = data["voices"][:1] if quick else data["voices"]
    speeds = data["speeds_wpm"][:1] if quick else data["speeds_wpm"]
    audio_dir = WORK_DIR / "answers" / "audio"
    for q in (q for q in typed if q.get("spoken")):
        slug = re.sub(r"[^a-z0-9]+", "-", q["question"].lower()).strip("-")
        for voice in voices:
            for wpm in speeds:
                path = espeak_clip(audio_dir / f"{slug}-{voice}-{wpm}.wav", q["question"],
                                   voice=voice, wpm=wpm)  # fmt: skip
                out.append(Item("spoken", q["question"], tuple(q["answers"]), q["category"],
                                str(path), voice, wpm))  # fmt: skip
    for clip in data["clips"][: 1 if quick else None]:
        path = SHARED_AUDIO / clip["clip"]
        if path.exists():
            out.append(Item("clip", clip["question"], tuple(clip["answers"]), "recording",
                            str(path)))  # fmt: skip
    return out


def ask(client: httpx.Client, item: Item, max_new_tokens: int | None) -> dict[str, Any]:
    """Submit one job, follow it to `done`; what it answered and how long it took."""
    from httpx_sse import connect_sse

    options = {"max_new_tokens": str(max_new_tokens)} if max_new_tokens else {}
    started = time.perf_counter()
    if item.audio is None:
        response = client.post("/v1/jobs", json={"question": item.question, **options})
    else:
        fields = {**options, **({"question": item.question} if item.kind == "clip" else {})}
        with open(item.audio, "rb") as handle:
            response = client.post("/v1/jobs", data=fields, files={"audio": handle})
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/jobs: HTTP {response.status_code} {response.text}")
    job_id = response.json()["id"]
    tokens = None
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        for sse in source.iter_sse():
            if sse.event == "answer.completed":
                tokens = json.loads(sse.data).get("completion_tokens")
            if sse.event == "done":
                break
    seconds = time.perf_counter() - started
    job = client.get(f"/v1/jobs/{job_id}").json()
    answer = (job.get("answer") or "").strip()
    record = {
        **{k: v for k, v in asdict(item).items() if v is not None},
        "status": job["status"],
        "transcript": job.get("transcript"),
        "answer": answer,
        "finish_reason": job.get("finish_reason"),
        "tokens": tokens,
        "words": word_count(answer),
        "seconds": round(seconds, 3),
        "answer_seconds": (job.get("durations") or {}).get("answer_seconds"),
        "match": matches(answer, item.answers),
        "first_sentence_match": matches(first_sentence(answer), item.answers),
    }
    if item.kind == "spoken":
        record["transcript_wer"] = word_error_rate(item.question, job.get("transcript") or "")
    return record


def transcribe(client: httpx.Client, path: str) -> tuple[dict[str, Any], float]:
    """A transcription job (OpenAI's endpoint, verbose_json) and its wall time."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        response = client.post(
            "/v1/audio/transcriptions",
            data={"model": "embedded", "response_format": "verbose_json"},
            files={"file": handle},
        )
    response.raise_for_status()
    return response.json(), time.perf_counter() - started


@contextmanager
def measured_worker(env: dict[str, str], workdir: Path, name: str) -> Iterator[dict[str, Any]]:
    """An embedded worker; yields its cost so far (start to ready, memory), peak memory added
    when it stops."""
    started = time.perf_counter()
    with worker(env, workdir, name) as process:
        cost: dict[str, Any] = {
            "start_to_ready_s": round(time.perf_counter() - started, 2),
            "rss_ready_mb": _rss_mb(process),
        }
        yield cost
        cost["peak_rss_mb"] = round(peak_rss_bytes(process.process.pid) / 2**20, 1)


def _rss_mb(process: Worker) -> float:
    return round(psutil.Process(process.process.pid).memory_info().rss / 2**20, 1)


def _run_set(
    client: httpx.Client, chosen: list[Item], max_new_tokens: int | None, label: str
) -> list[dict[str, Any]]:
    ask(client, chosen[0], max_new_tokens)  # warm-up: first-call costs are not the set's
    records = []
    for index, item in enumerate(chosen, 1):
        record = ask(client, item, max_new_tokens)
        records.append(record)
        verdict = "ok" if record["match"] else "--"
        log(f"answers {label} {index}/{len(chosen)} {record['seconds']:.1f} s {verdict} "
            f"{item.question!r} -> {record['answer'][:70]!r}")  # fmt: skip
    return records


def run(quick: bool, profile: bool) -> dict[str, Any]:
    os.environ.setdefault("TQDM_DISABLE", "1")
    workdir = WORK_DIR / "answers"
    chosen = items(quick)
    spoken = [i for i in chosen if i.kind == "spoken"]
    result: dict[str, Any] = {
        "suite": "answers",
        "quick": quick,
        "machine": machine_info(),
        "params": {
            "questions": len(chosen),
            "before_env": BEFORE,
            "before_max_new_tokens": BEFORE_MAX_NEW_TOKENS,
            "question_style_prompt": QUESTION_STYLE_PROMPT,
        },
        "configs": {},
        "whisper": {},
        "own_models": {},
    }
    with services(workdir) as svc:
        env = base_env(svc.redis.url(), AUDIOCHAT_MODEL="embedded",
                       AUDIOCHAT_STORAGE_URL=f"file://{workdir / 'objects'}")  # fmt: skip
        with gateway(env, workdir) as gw, httpx.Client(base_url=gw.url, timeout=600) as client:
            for label, extra, tokens in (("before", BEFORE, BEFORE_MAX_NEW_TOKENS),
                                         ("after", {}, None)):  # fmt: skip
                with measured_worker({**env, **extra}, workdir, f"worker-{label}") as cost:
                    records = _run_set(client, chosen, tokens, label)
                result["configs"][label] = {"cost": cost, "summary": summarise(records),
                                            "records": records}  # fmt: skip
            for label, extra in list(WHISPER_VARIANTS.items())[: 2 if quick else None]:
                with measured_worker({**env, **extra}, workdir, "worker-whisper"):
                    transcribe(client, spoken[0].audio or "")  # warm-up
                    heard = [(i, *transcribe(client, i.audio or "")) for i in spoken]
                wers = [word_error_rate(i.question, body["text"]) for i, body, _ in heard]
                result["whisper"][label] = {
                    "wer_mean": round(sum(wers) / len(wers), 4),
                    "exact": sum(w == 0 for w in wers),
                    "n": len(wers),
                    "seconds_p50": round(percentile([s for *_, s in heard], 50) or 0, 3),
                    "transcripts": [b["text"].strip() for _, b, _ in heard],
                }
                log(f"answers whisper {label}: WER {result['whisper'][label]['wer_mean']:.3f}")
            result["own_models"] = _own_models(client, env, workdir, chosen, quick)
    result["load_average_end"] = list(machine_info()["load_average"])
    return result


def _own_models(
    client: httpx.Client, env: dict[str, str], workdir: Path, chosen: list[Item], quick: bool
) -> dict[str, Any]:
    """Whisper base and Gemma 3 270M in place of the shipped models, where their packages are."""
    models = workdir / "models"
    out: dict[str, Any] = {}
    german = espeak_clip(workdir / "audio" / "german.wav", GERMAN[0], voice="de")
    base = own_models.whisper_base(models / "whisper-base")
    gemma = own_models.gemma_270m(models)
    runs = {
        "Whisper base (multilingual) + SmolLM2": (base, "WHISPER_PATH", "spoken"),
        "Whisper tiny.en + Gemma 3 270M (GGUF)": (gemma, "LLM_PATH", "typed"),
    }
    for label, (path, setting, kind) in runs.items():
        if path is None:
            out[label] = {"skipped": "its PyPI packages are not installed (the bench extra)"}
            continue
        extra = {f"AUDIOCHAT_EMBEDDED__{setting}": str(path)}
        subset = [i for i in chosen if i.kind == kind][: 4 if quick else None]
        with measured_worker({**env, **extra}, workdir, "worker-own") as cost:
            records = _run_set(client, subset, None, label)
            body, _ = transcribe(client, str(german))
        out[label] = {"cost": cost, "path": path.name, "summary": summarise(records),
                      "records": records, "german": {"expected": GERMAN[1],
                      "language": body.get("language"), "text": body.get("text")}}  # fmt: skip
    return out
