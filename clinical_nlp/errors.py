"""All project exceptions in one place; every message names the offending input."""

from __future__ import annotations


class ClinicalNLPError(Exception):
    """Base class for every error raised on purpose by clinical-nlp."""


class InputFormatError(ClinicalNLPError, ValueError):
    """Malformed input file or record; the message names the file and line (or row id)."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = ""
        if source is not None:
            where = f"{source}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.source = source
        self.line = line


class OffsetMismatchError(InputFormatError):
    """A span's offsets do not match the text it claims to cover."""


class ConfigError(ClinicalNLPError, ValueError):
    """A project file, label schema or guideline is missing or invalid."""


class StoreError(ClinicalNLPError):
    """The project state store cannot be read or written."""


class DoccanoError(ClinicalNLPError):
    """The Doccano server is unreachable or answered with an error (message kept)."""


class PolicyError(ClinicalNLPError):
    """A compliance rule forbids the action (PHI, qualification, QA coverage)."""


class AuditIntegrityError(ClinicalNLPError):
    """The hash-chained audit log was edited, reordered or truncated."""


class MissingOptionalDependencyError(ClinicalNLPError, ImportError):
    """An optional extra is needed for this feature."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"This feature needs the optional package '{package}'. Install it with: pip install 'clinical-nlp[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ModelError(ClinicalNLPError):
    """A model directory is missing, incomplete or incompatible."""
