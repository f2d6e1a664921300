"""How bench/answers.py scores an answer and a transcript against what was expected.

An answer matches when its normalised text contains one of the accepted answers as whole words
(lower case, punctuation dropped, "colour" spelt "color", number words up to twenty as digits),
so "The capital of France is Paris." matches "paris" and "Two plus two is four" matches "4".
A long answer that happens to name the right word also matches; `first_sentence` scores only
the first sentence, which is what a listener hears before losing interest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
    words = re.sub(r"[^a-z0-9' ]+", " ", text).split()
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
