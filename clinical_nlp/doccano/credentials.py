"""Doccano credentials: server URL and passwords, from the environment or a credentials file.

Never command-line arguments, never logged: ``DOCCANO_URL`` (default
``http://127.0.0.1:8000`` or the project's ``doccano.url``),
``DOCCANO_ADMIN_USER`` / ``DOCCANO_ADMIN_PASSWORD`` (local defaults
admin/password), annotator passwords from ``DOCCANO_USER_PASSWORDS``
(``alice:pw1,bob:pw2``) or a YAML/JSON file named by ``DOCCANO_CREDENTIALS_FILE``
(``{admin_user:..., admin_password:..., users: {alice: pw1}}``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clinical_nlp.errors import DoccanoError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DoccanoCredentials:
    """Server URL and passwords, read from the environment or a credentials file."""

    url: str = DEFAULT_URL
    admin_user: str = "admin"
    admin_password: str = "password"
    users: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print passwords
        return f"DoccanoCredentials(url={self.url!r}, admin_user={self.admin_user!r}, users={sorted(self.users)})"

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
        users = {str(k): str(v) for k, v in (data.get("users") or {}).items()}
        for item in filter(None, (env.get("DOCCANO_USER_PASSWORDS") or "").split(",")):
            name, sep, pw = item.partition(":")
            if not sep or not name.strip():
                raise DoccanoError("DOCCANO_USER_PASSWORDS must look like 'alice:pw1,bob:pw2'")
            users[name.strip()] = pw
        return cls(
            url=(env.get("DOCCANO_URL") or url or data.get("url") or DEFAULT_URL).rstrip("/"),
            admin_user=env.get("DOCCANO_ADMIN_USER") or data.get("admin_user") or "admin",
            admin_password=env.get("DOCCANO_ADMIN_PASSWORD") or data.get("admin_password") or "password",
            users=users,
        )

    def password(self, user: str) -> str:
        if user == self.admin_user:
            return self.admin_password
        if user not in self.users:
            raise DoccanoError(
                f"no Doccano password for annotator {user!r}: set DOCCANO_USER_PASSWORDS "
                f"('{user}:...') or list it in the DOCCANO_CREDENTIALS_FILE"
            )
        return self.users[user]
