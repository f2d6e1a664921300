"""The rows of docs/benchmarks.md's section on short answers (issue 15, answers.json), and the
comparisons its prose states (bench/templates/answers.md.j2)."""

from __future__ import annotations

from typing import Any

from bench.report_format import DASH, pct

KINDS = {"typed": "typed", "spoken": "spoken (espeak-ng)", "clip": "about a recording",
         "all": "all"}  # fmt: skip
QUESTION_KINDS = ("typed", "spoken", "clip")
SHIPPED = "Whisper tiny.en + SmolLM2-135M (shipped)"


def summary_rows(configs: dict[str, Any]) -> list[list[Any]]:
    """One row per settings (`before`, `after`) and kind of question."""
    rows = []
    for label, config in configs.items():
        for kind, name in KINDS.items():
            s = config["summary"].get(kind)
            if s:
                rows.append(
                    [
                        label,
                        name,
                        s["n"],
                        pct(s["match_rate"]),
                        pct(s["first_sentence_match_rate"]),
                        s["words_p50"],
                        s["words_mean"],
                        s["tokens_p50"],
                        f"{s['seconds_p50']:.2f}",
                        f"{s['seconds_p90']:.2f}",
                        s["hit_token_limit"],
                        s["failed"],
                    ]
                )
    return rows


def matching_less_after(configs: dict[str, Any]) -> list[str]:
    """The kinds of question whose answers match less often after than before, anywhere in
    the answer."""
    before, after = configs["before"]["summary"], configs["after"]["summary"]
    return [
        KINDS[k]
        for k in QUESTION_KINDS
        if k in before and after[k]["match_rate"] < before[k]["match_rate"]
    ]


def first_sentences_all_gain(configs: dict[str, Any]) -> bool:
    """Whether every kind matches at least as often after, counted in the first sentence."""
    before, after = configs["before"]["summary"], configs["after"]["summary"]
    return all(
        after[k]["first_sentence_match_rate"] >= before[k]["first_sentence_match_rate"]
        for k in QUESTION_KINDS
        if k in before
    )


def example_rows(answers: dict[str, Any]) -> list[list[str]]:
    """The first question, the issue's own example (the ripe banana, typed and spoken), and
    the first question about each recording: the question, its answer before and after."""
    before = answers["configs"]["before"]["records"]
    after = answers["configs"]["after"]["records"]
    rows, clips = [], set()
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        banana = "banana" in old["question"]
        first_clip = old["kind"] == "clip" and old["audio"] not in clips
        if index == 0 or banana or first_clip:
            clips.add(old.get("audio"))
            heard = f" (heard: \u201c{new['transcript']}\u201d)" if old["kind"] == "spoken" else ""
            rows.append([f"{old['question']}{heard}", clip(old["answer"]), clip(new["answer"])])
    return rows


def clip(text: str, limit: int = 160) -> str:
    """Text for a table cell: one line, pipes escaped, at most `limit` characters."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def whisper_rows(answers: dict[str, Any]) -> list[list[str]]:
    return [
        [label, f"{w['wer_mean']:.3f}", f"{w['exact']} of {w['n']}", f"{w['seconds_p50']:.2f}"]
        for label, w in (answers.get("whisper") or {}).items()
    ]


def own_model_rows(answers: dict[str, Any]) -> list[list[Any]]:
    """Each model of one's own beside the shipped pair on the same kind of question."""
    shipped = answers["configs"]["after"]
    rows = []
    for label, run in (answers.get("own_models") or {}).items():
        if "skipped" in run:
            continue
        kind = next(k for k in ("spoken", "typed") if k in run["summary"])
        rows.append([*_own_row(SHIPPED, shipped, kind), DASH])
        german = run["german"]
        heard = f"{german['language']} (\u201c{clip(german['text'] or '', 60)}\u201d)"
        rows.append([*_own_row(label, run, kind), heard])
    return rows


def _own_row(label: str, run: dict[str, Any], kind: str) -> list[Any]:
    cost, s = run["cost"], run["summary"][kind]
    return [label, f"{cost['start_to_ready_s']:.0f}", f"{cost['rss_ready_mb']:.0f}",
            f"{cost.get('peak_rss_mb', 0):.0f}", f"{s['n']} {KINDS[kind]}",
            pct(s["match_rate"]), s["words_mean"],
            f"{s['transcript_wer_mean']:.3f}" if "transcript_wer_mean" in s else DASH,
            f"{s['seconds_p50']:.2f}"]  # fmt: skip
