"""The fine tokenizer of the spaCy kind: letter runs, digit runs and single punctuation characters."""

from __future__ import annotations

import re
from pathlib import Path

_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_")


def fine_token_offsets(text: str) -> list[tuple[int, int]]:
    """Character ranges of letter runs, digit runs and single punctuation characters."""
    return [(m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _makeregister_fine_tokenizer():  # built lazily so importing this module does not import spaCy
    import spacy
    from spacy.tokens import Doc

    class FineTokenizer:
        """spaCy tokenizer splitting punctuation and letter/digit boundaries (stateless)."""

        def __init__(self, vocab):
            self.vocab = vocab

        def __call__(self, text: str) -> Doc:
            offs = fine_token_offsets(text)
            words = [text[a:b] for a, b in offs]
            spaces = [(offs[i + 1][0] > b) if i + 1 < len(offs) else False for i, (a, b) in enumerate(offs)]
            return Doc(self.vocab, words=words, spaces=spaces)

        def pipe(self, texts, batch_size: int = 1000):
            for t in texts:
                yield self(t)

        def to_bytes(self, **kwargs) -> bytes:
            return b""

        def from_bytes(self, data: bytes, **kwargs) -> FineTokenizer:
            return self

        def to_disk(self, path, **kwargs) -> None:
            Path(path).mkdir(parents=True, exist_ok=True)

        def from_disk(self, path, **kwargs) -> FineTokenizer:
            return self

    @spacy.registry.tokenizers("clinical_nlp.fine_tokenizer.v1")
    def create_fine_tokenizer():
        def make(nlp):
            return FineTokenizer(nlp.vocab)

        return make

    return FineTokenizer


_FINE_TOKENIZER = None


def register_fine_tokenizer():
    global _FINE_TOKENIZER
    if _FINE_TOKENIZER is None:
        _FINE_TOKENIZER = _makeregister_fine_tokenizer()
    return _FINE_TOKENIZER
