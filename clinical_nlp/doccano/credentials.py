"""The engine's Doccano login: server URL and the engine's own user, from the environment or a file.

Never command-line arguments, never logged: ``DOCCANO_URL`` (default
``http://127.0.0.1:8000`` or the project's ``doccano.url``),
``DOCCANO_ADMIN_USER`` / ``DOCCANO_ADMIN_PASSWORD`` (local defaults
admin/password), or a YAML/JSON file named by ``DOCCANO_CREDENTIALS_FILE``
(``{url: ..., admin_user: ..., admin_password: ...}``). Annotators' passwords are
never read: each annotator has their own Doccano project, into which the engine
imports their pre-annotations as itself (see the package docstring).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clinical_nlp.errors import DoccanoError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DoccanoCredentials:
    """Server URL and the engine's login, read from the environment or a credentials file."""

    url: str = DEFAULT_URL
    admin_user: str = "admin"
    admin_password: str = "password"

    def __repr__(self) -> str:  # never print passwords
        return f"DoccanoCredentials(url={self.url!r}, admin_user={self.admin_user!r})"

    @classmethod
    def from_env(cls, url: str | None = None, env: Mapping[str, str] | None = None) -> DoccanoCredentials:
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        path = env.get("DOCCANO_CREDENTIALS_FILE")
        if path:
            try:
                data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise DoccanoError(f"cannot read DOCCANO_CREDENTIALS_FILE {path}: {exc}") from None
            if not isinstance(data, dict):
                raise DoccanoError(f"{path}: credentials file must be a mapping")
            if data.get("users"):
                raise DoccanoError(
                    f"{path}: lists annotator passwords ('users'); clinical-nlp does not hold them any more "
                    "(each annotator has their own Doccano project): remove them from the file"
                )
        if env.get("DOCCANO_USER_PASSWORDS"):
            raise DoccanoError(
                "DOCCANO_USER_PASSWORDS is set: clinical-nlp holds no annotator passwords any more "
                "(each annotator has their own Doccano project); unset it"
            )
        return cls(
            url=(env.get("DOCCANO_URL") or url or data.get("url") or DEFAULT_URL).rstrip("/"),
            admin_user=env.get("DOCCANO_ADMIN_USER") or data.get("admin_user") or "admin",
            admin_password=env.get("DOCCANO_ADMIN_PASSWORD") or data.get("admin_password") or "password",
        )
