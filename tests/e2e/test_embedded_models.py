"""End to end on the embedded CPU models: real speech in, transcript and answer out."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.slow

REFERENCE = (
    "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD TO WELCOME HIS GOSPEL"
)


def normalise(text: str) -> str:
    text = re.sub(r"\bmr\.?(?=\s)", "mister", text.lower())
    return " ".join(re.sub(r"[^a-z' ]+", " ", text).split())


def test_spoken_question_is_transcribed_and_answered(stack: Stack, shared_audio: Path) -> None:
    job = stack.submit_audio(shared_audio / "1272-128104-0000.flac", max_new_tokens=48)
    events = stack.events(job["id"])
    final = stack.job(job["id"])
    assert final["status"] == "succeeded", final
    assert final["model"] == "embedded"
    error_rate = jiwer.wer(normalise(REFERENCE), normalise(final["transcript"]))
    assert error_rate <= 0.15, (final["transcript"], error_rate)
    assert final["answer"].strip()
    streamed = "".join(e.data["text"] for e in events if e.event == "answer.delta")
    assert streamed.strip() == final["answer"]
    transcript_deltas = [e for e in events if e.event == "transcript.delta"]
    assert transcript_deltas, "the transcript streams before it completes"


def test_typed_question_gets_a_real_answer(stack: Stack) -> None:
    job = stack.submit_text("What is the capital of France?", max_new_tokens=24)
    final = stack.run(job)
    assert final["status"] == "succeeded"
    assert "paris" in final["answer"].lower()
    assert final["finish_reason"] in ("stop", "length")


def test_the_default_answer_to_a_spoken_question_is_short(stack: Stack) -> None:
    # The demo's question, asked with no max_new_tokens: the model's own default applies.
    job = stack.submit_audio(Path(__file__).parents[2] / "assets" / "question.flac")
    final = stack.run(job, timeout=120)
    assert final["status"] == "succeeded", final
    assert final["max_new_tokens"] == 64
    assert final["transcript_language"] == "en"
    assert "paris" in final["answer"].lower()
    assert final["finish_reason"] == "stop"
    assert len(final["answer"].split()) <= 20, final["answer"]


def test_answers_asked_together_are_the_answers_asked_alone(stack: Stack) -> None:
    """The embedded worker runs two stages at once and decodes their answers as one batch."""
    questions = ["What is the capital of France?", "Who wrote Hamlet?", "What is two plus two?"]
    alone = [stack.run(stack.submit_text(q))["answer"] for q in questions]
    jobs = [stack.submit_text(q) for q in questions]
    together = [stack.run(job)["answer"] for job in jobs]
    assert together == alone
