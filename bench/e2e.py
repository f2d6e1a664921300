"""Suite 2: end-to-end cost on the embedded models. For each clip (../shared/audio and
espeak-ng speech of 5 to 60 s), the same transcription and answer done directly in this
process with `EmbeddedBackend`, and through audiochat (POST → `done` on the SSE stream, one
gateway, one embedded worker). Direct and service runs alternate clip by clip, each order half
the time, so drift on a shared machine falls on both.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    PASSAGE,
    SHARED_AUDIO,
    WORK_DIR,
    audio_seconds,
    base_env,
    espeak_clip,
    gateway,
    log,
    machine_info,
    services,
    worker,
)
from bench.stats import percentile

# ../shared/audio/README.md: LibriSpeech reference transcripts.
REFERENCES = {
    "1272-128104-0000.flac": "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE "
    "GLAD TO WELCOME HIS GOSPEL",
    "1089_134686_000007_000004.wav": "THE MUSIC CAME NEARER AND HE RECALLED THE WORDS THE WORDS "
    "OF SHELLEY'S FRAGMENT UPON THE MOON WANDERING COMPANIONLESS PALE FOR WEARINESS",
}
FULL_SECONDS = (5, 15, 30, 60)
QUICK_SECONDS = (5, 15)


def _normalise(text: str) -> str:
    text = re.sub(r"\bmr\.?(?=\s)", "mister", text.lower())
    return " ".join(re.sub(r"[^a-z' ]+", " ", text).split())


def _wer(reference: str, hypothesis: str) -> float | None:
    try:
        import jiwer
    except ImportError:
        return None
    return round(float(jiwer.wer(_normalise(reference), _normalise(hypothesis))), 4)


def clips(quick: bool) -> list[Path]:
    """The shared recordings, then espeak-ng speech cut to each length."""
    found = [SHARED_AUDIO / name for name in REFERENCES if (SHARED_AUDIO / name).exists()]
    audio_dir = WORK_DIR / "audio"
    made = [
        espeak_clip(audio_dir / f"passage-{s}s.wav", PASSAGE, seconds=s)
        for s in (QUICK_SECONDS if quick else FULL_SECONDS)
    ]
    return found + made


class Direct:
    """The same work as a job's two stages, in this process, with no queue in between."""

    def __init__(self) -> None:
        from shared.config import Settings
        from worker.backends.embedded import EmbeddedBackend

        started = time.perf_counter()
        self.backend = EmbeddedBackend.load(Settings())
        self.load_seconds = time.perf_counter() - started

    def run(self, path: Path, max_new_tokens: int) -> dict[str, Any]:
        from worker.audio import decode_audio
        from worker.backends.base import AnswerRequest, GenerationStats

        started = time.perf_counter()
        audio = decode_audio(path)
        transcript = "".join(
            piece.text for piece in self.backend.transcribe(audio, language=None)
        ).strip()
        transcribed = time.perf_counter()
        request = AnswerRequest(
            question=transcript, transcript=transcript, max_new_tokens=max_new_tokens
        )
        pieces = [p for p in self.backend.answer(request) if not isinstance(p, GenerationStats)]
        finished = time.perf_counter()
        return {
            "seconds": round(finished - started, 4),
            "transcribe_seconds": round(transcribed - started, 4),
            "answer_seconds": round(finished - transcribed, 4),
            "transcript": transcript,
            "answer": "".join(pieces).strip(),
        }


def _through_service(client: httpx.Client, path: Path, max_new_tokens: int) -> dict[str, Any]:
    from httpx_sse import connect_sse

    started = time.perf_counter()
    with path.open("rb") as handle:
        response = client.post(
            "/v1/jobs",
            files={"audio": (path.name, handle, "application/octet-stream")},
            data={"max_new_tokens": str(max_new_tokens)},
        )
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/jobs: HTTP {response.status_code} {response.text}")
    job_id = response.json()["id"]
    accepted = time.perf_counter()
    first_answer: float | None = None
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        for sse in source.iter_sse():
            if sse.event == "answer.delta" and first_answer is None:
                first_answer = time.perf_counter()
            if sse.event == "done":
                break
    finished = time.perf_counter()
    job = client.get(f"/v1/jobs/{job_id}").json()
    durations = job.get("durations") or {}
    return {
        "seconds": round(finished - started, 4),
        "accepted_seconds": round(accepted - started, 4),
        "first_answer_seconds": round(first_answer - started, 4) if first_answer else None,
        "worker_transcribe_seconds": durations.get("transcribe_seconds"),
        "worker_answer_seconds": durations.get("answer_seconds"),
        "status": job["status"],
        "transcript": (job.get("transcript") or "").strip(),
        "answer": (job.get("answer") or "").strip(),
    }


def run(quick: bool, profile: bool) -> dict[str, Any]:
    max_new_tokens = 32 if quick else 128
    repeats = 1 if quick else 2
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF conversion's progress bars
    workdir = WORK_DIR / "e2e"
    paths = clips(quick)
    result: dict[str, Any] = {
        "suite": "e2e",
        "quick": quick,
        "machine": machine_info(),
        "params": {
            "max_new_tokens": max_new_tokens,
            "temperature": 0.0,
            "model": "embedded",
            "repeats": repeats,
        },
        "clips": [],
    }
    with services(workdir) as svc:
        env = base_env(
            svc.redis.url(),
            AUDIOCHAT_MODEL="embedded",
            AUDIOCHAT_STORAGE_URL=f"file://{workdir / 'objects'}",
        )
        log("e2e: loading the embedded models in a worker and in this process")
        with gateway(env, workdir) as gw, worker(env, workdir, "worker-embedded"):
            direct = Direct()
            result["params"]["direct_load_seconds"] = round(direct.load_seconds, 2)
            with httpx.Client(base_url=gw.url, timeout=300) as client:
                log("e2e: warm-up, both ways")
                direct.run(paths[0], max_new_tokens)
                _through_service(client, paths[0], max_new_tokens)
                for index, path in enumerate(paths):
                    log(f"e2e: {path.name}")
                    directs, served = [], []
                    for repeat in range(repeats):
                        if (index + repeat) % 2 == 0:
                            directs.append(direct.run(path, max_new_tokens))
                            served.append(_through_service(client, path, max_new_tokens))
                        else:
                            served.append(_through_service(client, path, max_new_tokens))
                            directs.append(direct.run(path, max_new_tokens))
                    # Best of the repeats each way: the machine's noise only ever adds time.
                    d = min(directs, key=lambda r: r["seconds"])
                    s = min(served, key=lambda r: r["seconds"])
                    clip = {
                        "clip": path.name,
                        "source": "shared" if path.name in REFERENCES else "espeak-ng",
                        "audio_seconds": audio_seconds(path),
                        "direct": d,
                        "service": s,
                        "ratio": round(s["seconds"] / d["seconds"], 4),
                        "direct_runs_s": [r["seconds"] for r in directs],
                        "service_runs_s": [r["seconds"] for r in served],
                        "same_transcript": d["transcript"] == s["transcript"],
                        "same_answer": d["answer"] == s["answer"],
                    }
                    if path.name in REFERENCES:
                        clip["wer_direct"] = _wer(REFERENCES[path.name], d["transcript"])
                        clip["wer_service"] = _wer(REFERENCES[path.name], s["transcript"])
                    result["clips"].append(clip)
                    print(
                        f"  e2e {path.name:32} {clip['audio_seconds']:6.1f} s audio: "
                        f"direct {d['seconds']:.2f} s, service {s['seconds']:.2f} s, "
                        f"ratio {clip['ratio']:.3f}, same transcript {clip['same_transcript']}",
                        flush=True,
                    )
    ratios = [c["ratio"] for c in result["clips"]]
    result["summary"] = {
        "ratio_p50": round(percentile(ratios, 50) or 0, 4),
        "direct_p50_s": round(
            percentile([c["direct"]["seconds"] for c in result["clips"]], 50) or 0, 4
        ),
        "service_p50_s": round(
            percentile([c["service"]["seconds"] for c in result["clips"]], 50) or 0, 4
        ),
        "same_transcripts": sum(c["same_transcript"] for c in result["clips"]),
        "clips": len(result["clips"]),
    }
    result["load_average_end"] = list(machine_info()["load_average"])
    return result
