"""One entry point for every corpus format: :func:`read_corpus` and :func:`write_corpus`.

Formats (``fmt`` names) and how they are detected when ``fmt`` is ``None``:

=============  ==============================================  ===========
name           what                                            detection
=============  ==============================================  ===========
``jsonl``      our JSONL (lossless)                            ``.jsonl`` (unless Doccano-shaped)
``doccano``    Doccano sequence-labeling JSONL                 ``.jsonl`` whose first row has ``label``/``entities`` but no ``spans``
``brat``       folder of ``.txt``/``.ann`` pairs               a directory holding ``.txt`` files
``conll``      CoNLL / BIO (lossy)                             ``.conll``, ``.bio``, ``.iob``
``docbin``     spaCy DocBin (lossless)                         ``.spacy``
``dataframe``  span table (lossless)                           ``.parquet``, ``.csv``
``fhir``       FHIR R4 DocumentReference / Bundle / Bulk NDJSON ``.ndjson``, ``.json``, a directory of them (read only)
=============  ==============================================  ===========

Example:
    >>> docs = read_corpus("corpora/chia/train.jsonl")            # doctest: +SKIP
    >>> write_corpus(docs, "out/chia_brat", "brat")               # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError
from clinical_nlp.types import AnnotatedNote

FORMATS: tuple[str, ...] = ("jsonl", "doccano", "brat", "conll", "docbin", "dataframe", "fhir")
#: formats that can be written
WRITABLE: tuple[str, ...] = ("jsonl", "doccano", "brat", "conll", "docbin", "dataframe")
#: aliases accepted for ``fmt``
ALIASES = {
    "doccano_jsonl": "doccano",
    "spacy": "docbin",
    "bio": "conll",
    "parquet": "dataframe",
    "csv": "dataframe",
    "json": "jsonl",
    "ndjson": "fhir",
    "standoff": "brat",
}
_EXT = {
    ".spacy": "docbin",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
    ".parquet": "dataframe",
    ".csv": "dataframe",
    ".ndjson": "fhir",
    ".json": "fhir",
}


def normalize_format(fmt: str) -> str:
    """The canonical format name (aliases resolved) or an error listing the known ones."""
    name = ALIASES.get(fmt.lower().strip(), fmt.lower().strip())
    if name not in FORMATS:
        raise InputFormatError(f"unknown corpus format {fmt!r} (known: {', '.join(FORMATS)})")
    return name


def _first_row(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    row = json.loads(raw.decode("utf-8"))
                    return row if isinstance(row, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the reader will report the problem with its line number
    return None


def detect_format(path: Path | str, *, for_output: bool = False) -> str:
    """Guess the format from the path (see the module table)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not for_output and path.is_dir():
        names = {p.suffix.lower() for p in path.iterdir()}
        if ".txt" in names or ".ann" in names:
            return "brat"
        if names & {".json", ".ndjson"}:
            return "fhir"
        raise InputFormatError(
            "cannot tell the format of this directory (no .txt/.ann or FHIR files); pass the format explicitly",
            source=str(path),
        )
    if suffix == ".jsonl":
        if for_output:
            return "jsonl"
        row = _first_row(path)
        if row is not None and "spans" not in row and ("label" in row or "entities" in row):
            return "doccano"
        if row is not None and "resourceType" in row:
            return "fhir"
        return "jsonl"
    if suffix in _EXT:
        return _EXT[suffix]
    if for_output and not suffix:
        return "brat"
    raise InputFormatError(
        f"cannot tell the corpus format from the extension {suffix or '(none)'!r}; "
        f"pass it explicitly (one of {', '.join(FORMATS)})",
        source=str(path),
    )


def read_corpus(path: Path | str, fmt: str | None = None, *, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read a corpus in any supported format; every span is verified against its text.

    ``fmt`` is a name of :data:`FORMATS` (or an alias); ``None`` detects it from
    the path. ``allow_empty`` accepts notes with empty text (Chia has some).
    Raises :class:`InputFormatError` / :class:`OffsetMismatchError` naming the
    file and line (or document and span).
    """
    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", source=str(path))
    name = normalize_format(fmt) if fmt else detect_format(path)
    if name == "jsonl":
        from clinical_nlp.io.jsonl import read_jsonl

        return read_jsonl(path, allow_empty=allow_empty)
    if name == "doccano":
        from clinical_nlp.io.doccano_jsonl import read_doccano_jsonl

        return read_doccano_jsonl(path, allow_empty=allow_empty)
    if name == "brat":
        from clinical_nlp.io.brat import read_brat, read_brat_document

        return (
            [read_brat_document(path, allow_empty=allow_empty)]
            if path.is_file()
            else read_brat(path, allow_empty=allow_empty)
        )
    if name == "conll":
        from clinical_nlp.io.conll import read_conll

        return read_conll(path, allow_empty=allow_empty)
    if name == "docbin":
        from clinical_nlp.io.docbin import read_docbin

        return read_docbin(path, allow_empty=allow_empty)
    if name == "dataframe":
        from clinical_nlp.io.dataframe import read_dataframe

        return read_dataframe(path)
    from clinical_nlp.io.fhir import read_fhir

    return read_fhir(path, allow_empty=allow_empty)


def write_corpus(docs: Iterable[AnnotatedNote], path: Path | str, fmt: str | None = None, **options: Any) -> int:
    """Write documents in ``fmt`` (detected from ``path`` when ``None``); returns the count.

    Files are written atomically (no partial output on error). Options:
    ``overlap="error"|"longest"`` for ``conll``. BRAT writes a directory.
    """
    path = Path(path)
    name = normalize_format(fmt) if fmt else detect_format(path, for_output=True)
    if name not in WRITABLE:
        raise InputFormatError(f"format {name!r} can be read but not written (writable: {', '.join(WRITABLE)})")
    docs = list(docs)
    if name == "jsonl":
        from clinical_nlp.io.jsonl import write_jsonl

        return write_jsonl(path, docs)
    if name == "doccano":
        from clinical_nlp.io.doccano_jsonl import write_doccano_jsonl

        return write_doccano_jsonl(docs, path)
    if name == "brat":
        from clinical_nlp.io.brat import write_brat

        return write_brat(docs, path)
    if name == "conll":
        from clinical_nlp.io.conll import write_conll

        return write_conll(docs, path, overlap=options.get("overlap", "error"))
    if name == "docbin":
        from clinical_nlp.io.docbin import write_docbin

        return write_docbin(docs, path)
    from clinical_nlp.io.dataframe import write_dataframe

    return write_dataframe(docs, path)


def convert_corpus(
    input: Path | str,
    output: Path | str,
    *,
    from_fmt: str | None = None,
    to_fmt: str | None = None,
    overlap: str = "error",
    allow_empty: bool = False,
) -> tuple[int, int, str, str]:
    """Read ``input`` and write ``output``; returns (documents, spans, input format, output format)."""
    if overlap not in ("error", "longest"):
        raise InputFormatError(f"overlap policy must be 'error' or 'longest', not {overlap!r}")
    fmt_in = normalize_format(from_fmt) if from_fmt else detect_format(input)
    fmt_out = normalize_format(to_fmt) if to_fmt else detect_format(output, for_output=True)
    docs = read_corpus(input, fmt_in, allow_empty=allow_empty)
    if not docs:
        raise InputFormatError("no documents in input (empty file)", source=str(input))
    count = write_corpus(docs, output, fmt_out, overlap=overlap)
    return count, sum(len(d.spans) for d in docs), fmt_in, fmt_out
