"""Helpers shared by the corpus format modules (UTF-8 reading, text checks)."""

from __future__ import annotations

from pathlib import Path

from clinical_nlp.errors import InputFormatError

#: longest note text accepted by any reader (characters)
MAX_TEXT_CHARS = 1_000_000  # spaCy's default max_length: a longer "note" cannot be pre-annotated


def read_utf8(path: Path | str) -> str:
    """Read a whole file as UTF-8; bad bytes raise naming the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFormatError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise InputFormatError("expected a file, found a directory", source=str(path)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputFormatError(
            f"not valid UTF-8 (byte offset {exc.start}: {raw[exc.start : exc.start + 1]!r}); convert the file to UTF-8",
            source=str(path),
            line=line,
        ) from None


def check_text(
    doc_id: str,
    text: str,
    *,
    source: str,
    line: int | None = None,
    allow_empty: bool = False,
    what: str = "document",
) -> None:
    """Reject empty or oversized note texts with a message naming the document (or ``what`` it is)."""
    if not text.strip() and not allow_empty:
        raise InputFormatError(f"{what} {doc_id!r}: empty text", source=source, line=line)
    if len(text) > MAX_TEXT_CHARS:
        raise InputFormatError(
            f"{what} {doc_id!r}: text of {len(text):,} characters exceeds the limit of {MAX_TEXT_CHARS:,}",
            source=source,
            line=line,
        )
