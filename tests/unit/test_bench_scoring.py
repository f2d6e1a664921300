"""How bench/answers.py scores answers and transcripts: the figures in docs/benchmarks.md
section 6 stand on these rules."""

from __future__ import annotations

import pytest

from bench.scoring import first_sentence, matches, normalise, word_error_rate


@pytest.mark.parametrize(
    ("answer", "accepted", "expected"),
    [
        ("The capital of France is Paris.", ["paris"], True),
        ("Parisian cafés are famous.", ["paris"], False),
        ("Two plus two is four.", ["4", "four"], True),
        ("Seven plus five equals 12", ["12", "twelve"], True),
        ("Five times five is twenty-five.", ["25", "twenty five"], True),
        ("It is 125.", ["25"], False),
        ("A ripe banana is yellow!", ["yellow"], True),
        ("The colour is green", ["green"], True),
        ("William Shakespeare wrote it.", ["shakespeare"], True),
        ("He recalled Shelley's fragment.", ["shelley"], True),
        ("", ["paris"], False),
    ],
)
def test_an_answer_matches_when_it_contains_an_accepted_answer_as_words(
    answer: str, accepted: list[str], expected: bool
) -> None:
    assert matches(answer, accepted) is expected


def test_normalising_spells_colour_one_way_and_numbers_as_digits() -> None:
    assert normalise("What COLOUR is it? Two, or twenty-one?") == "what color is it 2 or 21"


def test_the_first_sentence_ends_at_its_first_full_stop() -> None:
    assert first_sentence("Paris. It is also big!") == "Paris."
    assert first_sentence("It costs 3.5 euros. Cheap.") == "It costs 3.5 euros."
    assert first_sentence("no stop at all") == "no stop at all"


def test_word_error_rate_ignores_case_punctuation_and_digit_spelling() -> None:
    assert word_error_rate("What is two plus two?", "what is 2 plus 2") == 0.0
    assert word_error_rate("What colour is coal?", "What color is gold?") == 0.25
