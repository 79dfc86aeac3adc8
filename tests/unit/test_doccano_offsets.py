"""Code points ↔ the UTF-16 units Doccano's UI counts: exact where both exist, widened inside a pair."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clinical_nlp.doccano.offsets import from_doccano, to_doccano

TEXT = st.text(
    alphabet=st.sampled_from(["a", " ", "é", "\n", "\U0001f600", "\U00020000", "字"]), min_size=1, max_size=40
)


@given(TEXT, st.data())
def test_round_trip_and_same_characters(text, data):
    a = data.draw(st.integers(0, len(text) - 1))
    b = data.draw(st.integers(a + 1, len(text)))
    ((ua, ub, lab),) = to_doccano(text, [(a, b, "X")])
    utf16 = text.encode("utf-16-le")
    assert utf16[2 * ua : 2 * ub].decode("utf-16-le") == text[a:b]  # the same characters in the UI's units
    assert from_doccano(text, [(ua, ub, lab)]) == [(a, b, "X")]


def test_plain_text_is_unchanged_and_half_an_emoji_widens_to_it():
    assert to_doccano("chest pain", [(0, 5, "C")]) == [(0, 5, "C")]
    text = "x\U0001f600y"  # UTF-16: x=0, emoji=1..3, y=3
    assert to_doccano(text, [(2, 3, "C")]) == [(3, 4, "C")]
    assert from_doccano(text, [(2, 3, "C")]) == [(1, 2, "C")]  # the second half of the emoji: the emoji
    assert from_doccano(text, [(0, 2, "C")]) == [(0, 2, "C")]  # x and the first half: x and the emoji
