"""How bench/answers.py scores an answer and a transcript against what was expected, and sums
the scores up.

An answer matches when its normalised text contains one of the accepted answers as whole words
(lower case, punctuation and possessive 's dropped, "colour" spelt "color", number words up to
twenty as digits), so "The capital of France is Paris." matches "paris" and "Two plus two is
four" matches "4".
A long answer that happens to name the right word also matches; `first_sentence` scores only
the first sentence, which is what a listener hears before losing interest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from bench.stats import percentile

# fmt: off
NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
]
# fmt: on
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}


def normalise(text: str) -> str:
    """Lower case words and digits, one space apart, number words as digits."""
    text = text.lower().replace("colour", "color").replace("-", " ")
    # "Shelley's fragment" names Shelley: possessives and apostrophes go.
    text = re.sub(r"'s\b", "", text).replace("'", "")
    words = re.sub(r"[^a-z0-9 ]+", " ", text).split()
    out: list[str] = []
    for word in words:
        if word in NUMBER_WORDS:
            value = NUMBER_WORDS.index(word)
            # "twenty five" is 25: a tens word followed by a unit.
            if out and out[-1] in {str(v) for v in _TENS.values()} and value < 10:
                out[-1] = str(int(out[-1]) + value)
                continue
            out.append(str(value))
        elif word in _TENS:
            out.append(str(_TENS[word]))
        else:
            out.append(word)
    return " ".join(out)


def matches(answer: str, accepted: Sequence[str]) -> bool:
    """Whether the answer contains one of the accepted answers as whole words."""
    text = f" {normalise(answer)} "
    return any(f" {normalise(expected)} " in text for expected in accepted)


def first_sentence(text: str) -> str:
    """The answer up to its first full stop, question or exclamation mark (or all of it)."""
    found = re.search(r"[.!?](\s|$)", text.strip())
    return text.strip()[: found.start() + 1] if found else text.strip()


def word_count(text: str) -> int:
    return len(text.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate after `normalise` on both sides (jiwer)."""
    import jiwer

    return round(float(jiwer.wer(normalise(reference), normalise(hypothesis))), 4)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind of question and overall: match rates, answer length, time per job."""
    out: dict[str, Any] = {}
    for kind in ("typed", "spoken", "clip", "all"):
        chosen = [r for r in records if kind in ("all", r["kind"])]
        if not chosen:
            continue
        n = len(chosen)
        out[kind] = {
            "n": n,
            "match_rate": round(sum(r["match"] for r in chosen) / n, 4),
            "first_sentence_match_rate": round(
                sum(r["first_sentence_match"] for r in chosen) / n, 4
            ),
            "words_p50": percentile([r["words"] for r in chosen], 50),
            "words_mean": round(sum(r["words"] for r in chosen) / n, 1),
            "tokens_p50": percentile([r["tokens"] or 0 for r in chosen], 50),
            "seconds_p50": round(percentile([r["seconds"] for r in chosen], 50) or 0, 3),
            "seconds_p90": round(percentile([r["seconds"] for r in chosen], 90) or 0, 3),
            "seconds_total": round(sum(r["seconds"] for r in chosen), 1),
            "hit_token_limit": sum(r["finish_reason"] == "length" for r in chosen),
            "failed": sum(r["status"] != "succeeded" for r in chosen),
        }
        wers = [r["transcript_wer"] for r in chosen if "transcript_wer" in r]
        if wers:
            out[kind]["transcript_wer_mean"] = round(sum(wers) / len(wers), 4)
    return out


def rescore(result: dict[str, Any]) -> dict[str, Any]:
    """Score the stored answers and transcripts again (after a change to bench/scoring.py),
    without asking the models again."""
    runs = [
        *result["configs"].values(),
        *(r for r in result["own_models"].values() if "records" in r),
    ]
    for run in runs:
        for record in run["records"]:
            answer, accepted = record["answer"], record["answers"]
            record["match"] = matches(answer, accepted)
            record["first_sentence_match"] = matches(first_sentence(answer), accepted)
            if record["kind"] == "spoken":
                record["transcript_wer"] = word_error_rate(
                    record["question"], record["transcript"] or ""
                )
        run["summary"] = summarise(run["records"])
    return result


if __name__ == "__main__":
    # `python -m bench.scoring --rescore`: bench/results/answers.json scored again in place.
    import sys

    from bench.harness import RESULTS_DIR, write_result

    if sys.argv[1:] != ["--rescore"]:
        raise SystemExit("usage: python -m bench.scoring --rescore")
    write_result("answers", rescore(json.loads((RESULTS_DIR / "answers.json").read_text())))
