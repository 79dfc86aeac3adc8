"""One character for another of the same role, so rules and tokenizers read what a person reads.

Text pasted from web-based records carries zero-width spaces (U+200B), word joiners, byte-order
marks, no-break spaces and non-breaking hyphens. Tokenizers and patterns do not take them for
spaces or hyphens: "edema.\u200b Tylenol" was one spaCy token, "John\u200b Smith" left "Smith" in
a de-identified note, "617\u2011555\u20110199" was no phone number. :func:`plain_text` replaces each
by one ASCII character (same length, so every offset stays valid on the original text).
"""

from __future__ import annotations

#: no-break, typographic, zero-width and ideographic spaces, joiners, the byte-order mark
_SPACES = "\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200E))) + "\u202f\u205f\u2060\u3000\ufeff"
#: hyphens, dashes and minus signs written inside numbers and names
_HYPHENS = "\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d"
_TABLE = str.maketrans(
    {**{c: " " for c in _SPACES}, **{c: "-" for c in _HYPHENS}, "\u2028": "\n", "\u2029": "\n", "\u2215": "/"}
)


def plain_text(text: str) -> str:
    """``text`` with those characters replaced one for one (an ASCII text is returned as it is)."""
    return text if text.isascii() else text.translate(_TABLE)
