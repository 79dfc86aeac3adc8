"""Corpus readers and writers (one module per format)."""

from clinical_nlp.io.registry import FORMATS, WRITABLE, detect_format, read_corpus, write_corpus

__all__ = ["FORMATS", "WRITABLE", "detect_format", "read_corpus", "write_corpus"]
