"""Typed access to one Doccano server: an annotator's session and the admin's project sync."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

from clinical_nlp.config import Guideline, LabelSchema
from clinical_nlp.doccano.codec import ATTRIBUTE_LABEL_SEP, attribute_label_names, decode_triples
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.doccano.http import DoccanoHttp
from clinical_nlp.errors import DoccanoError
from clinical_nlp.types import Span

DOCCANO_ROLES = ("annotator", "annotation_approver", "project_admin")
_ROLE_ALIASES = {"approver": "annotation_approver", "admin": "project_admin"}


class AnnotatorSession:
    """Acts through the REST API as one user in one project.

    Example (needs a server)::

        s = AnnotatorSession(url, "alice", pw, project_id)
        for ex in s.examples(): ...
        s.add_span(ex["id"], 0, 5, "Condition"); s.mark_done(ex["id"])
    """

    def __init__(self, url: str, username: str, password: str, project_id: int, *, http: DoccanoHttp | None = None):
        self.http = http or DoccanoHttp(url, username, password)
        self.username = username
        self.project_id = project_id
        self._label_ids: dict[str, int] | None = None

    @property
    def _p(self) -> str:
        return f"/v1/projects/{self.project_id}"

    def label_ids(self) -> dict[str, int]:
        if self._label_ids is None:
            self._label_ids = {t["text"]: t["id"] for t in self.http.get_all(f"{self._p}/span-types")}
        return self._label_ids

    def label_names(self) -> dict[int, str]:
        return {v: k for k, v in self.label_ids().items()}

    def examples(self, *, confirmed: bool | None = None) -> list[dict[str, Any]]:
        """Examples of the project (``confirmed``: only those this user marked done / not done)."""
        params = {} if confirmed is None else {"confirmed": str(confirmed)}
        return list(self.http.get_all(f"{self._p}/examples", params))

    def spans(self, example_id: int) -> list[dict[str, Any]]:
        """This user's raw Doccano spans on an example (id, label id, start_offset, end_offset)."""
        return self.http.request("GET", f"{self._p}/examples/{example_id}/spans") or []

    def triples(self, example_id: int) -> list[tuple[int, int, str]]:
        names = self.label_names()
        return [
            (s["start_offset"], s["end_offset"], names.get(s["label"], str(s["label"]))) for s in self.spans(example_id)
        ]

    def read(self, example_id: int, text: str) -> tuple[Span, ...]:
        """This user's spans on an example decoded into :class:`Span` (attributes attached)."""
        return decode_triples(text, self.triples(example_id))

    def add_span(self, example_id: int, start: int, end: int, label: str) -> int:
        ids = self.label_ids()
        if label not in ids:
            raise DoccanoError(f"label {label!r} is not a span type of Doccano project {self.project_id}")
        data = self.http.request(
            "POST",
            f"{self._p}/examples/{example_id}/spans",
            json={"label": ids[label], "start_offset": start, "end_offset": end},
        )
        return int(data["id"])

    def delete_span(self, example_id: int, span_id: int) -> None:
        self.http.request("DELETE", f"{self._p}/examples/{example_id}/spans/{span_id}")

    def find_span(self, example_id: int, start: int, end: int, label: str) -> int | None:
        ids = self.label_ids()
        for s in self.spans(example_id):
            if (s["start_offset"], s["end_offset"], s["label"]) == (start, end, ids.get(label)):
                return int(s["id"])
        return None

    def is_done(self, example_id: int) -> bool:
        ex = self.http.request("GET", f"{self._p}/examples/{example_id}")
        return bool(ex.get("is_confirmed"))

    def mark_done(self, example_id: int) -> None:
        """Confirm the example for this user (idempotent: Doccano's state endpoint toggles)."""
        if not self.is_done(example_id):
            self.http.request("POST", f"{self._p}/examples/{example_id}/states", json={})


class DoccanoServer:
    """Admin access: projects, labels, members, users, imports."""

    def __init__(self, creds: DoccanoCredentials | None = None):
        self.creds = creds or DoccanoCredentials.from_env()
        self.url = self.creds.url
        self.http = DoccanoHttp(self.url, self.creds.admin_user, self.creds.admin_password)

    def find_project(self, name: str) -> dict[str, Any] | None:
        for p in self.http.get_all("/v1/projects", {"q": name}):
            if p.get("name") == name:
                return p
        return None

    def sync_project(self, name: str, guideline: Guideline, members: Mapping[str, str] | None = None) -> int:
        """Create or update project ``name`` from the label schema; returns its id.

        Labels (with colours) and attribute labels are created if missing and
        recoloured if changed; overlapping spans are allowed, collaborative mode
        is off, and the guideline markdown (with its version) is the project's
        guideline page. ``members`` maps user name → role (annotator,
        approver/annotation_approver, project_admin); missing users are created.
        """
        body = {
            "name": name,
            "description": f"clinical-nlp project {name} (guideline {guideline.version})",
            "guideline": f"<!-- guideline version {guideline.version} -->\n\n{guideline.text}",
            "project_type": "SequenceLabeling",
            "resourcetype": "SequenceLabelingProject",
            "allow_overlapping": True,
            "collaborative_annotation": False,
            "random_order": False,
            "grapheme_mode": False,
            "use_relation": False,
        }
        existing = self.find_project(name)
        if existing is None:
            pid = int(self.http.request("POST", "/v1/projects", json=body)["id"])
        else:
            pid = int(existing["id"])
            self.http.request("PATCH", f"/v1/projects/{pid}", json=body)
        self._sync_labels(pid, guideline.schema)
        for user, role in (members or {}).items():
            self.add_member(pid, user, role)
        return pid

    def _sync_labels(self, pid: int, schema: LabelSchema) -> None:
        have = {t["text"]: t for t in self.http.get_all(f"/v1/projects/{pid}/span-types")}
        wanted = [(lab.name, lab.color) for lab in schema.labels]
        for name in attribute_label_names(schema):
            attr = name.split(ATTRIBUTE_LABEL_SEP)[0]
            color = schema.attributes[attr].color if attr in schema.attributes else "#888888"
            wanted.append((name, color))
        for text, color in wanted:
            body = {"text": text, "background_color": color, "text_color": "#ffffff"}
            if text not in have:
                self.http.request("POST", f"/v1/projects/{pid}/span-types", json=body)
            elif have[text].get("background_color", "").lower() != color.lower():
                self.http.request("PATCH", f"/v1/projects/{pid}/span-types/{have[text]['id']}", json=body)

    def user_id(self, username: str, *, create: bool = True) -> int:
        for u in self.http.get_all("/v1/users", {"q": username}):
            if u["username"] == username:
                return int(u["id"])
        if not create:
            raise DoccanoError(f"Doccano user {username!r} does not exist at {self.url}")
        pw = self.creds.password(username)
        data = self.http.request(
            "POST",
            "/v1/users/create",
            json={
                "username": username,
                "email": f"{username}@example.invalid",
                "password1": pw,
                "password2": pw,
            },
        )
        return int(data["id"])

    def add_member(self, pid: int, username: str, role: str) -> None:
        role = _ROLE_ALIASES.get(role, role)
        if role not in DOCCANO_ROLES:
            raise DoccanoError(f"unknown Doccano role {role!r} (use one of {DOCCANO_ROLES})")
        uid = self.user_id(username)
        roles = {r["name"]: r["id"] for r in self.http.request("GET", "/v1/roles")}
        for m in self.http.request("GET", f"/v1/projects/{pid}/members"):
            if m["user"] == uid:
                if m["rolename"] != role:
                    self.http.request(
                        "PUT", f"/v1/projects/{pid}/members/{m['id']}", json={"user": uid, "role": roles[role]}
                    )
                return
        self.http.request("POST", f"/v1/projects/{pid}/members", json={"user": uid, "role": roles[role]})

    def examples_by_note(self, pid: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for ex in self.http.get_all(f"/v1/projects/{pid}/examples"):
            nid = (ex.get("meta") or {}).get("note_id")
            if nid is not None:
                out.setdefault(str(nid), int(ex["id"]))
        return out

    def import_texts(
        self,
        pid: int,
        notes: Sequence[tuple[str, str, Sequence[tuple[int, int, str]]]],
        *,
        http: DoccanoHttp | None = None,
        timeout: float = 600.0,
    ) -> None:
        """Bulk-import ``(note_id, text, labels)`` (one JSONL upload, run by the celery worker).

        The labels belong to the user who imports (``http``'s user; default the admin).
        """
        if not notes:
            return
        http = http or self.http
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as fh:
            for nid, text, labels in notes:
                fh.write(
                    json.dumps({"text": text, "label": [list(t) for t in labels], "note_id": nid}, ensure_ascii=False)
                    + "\n"
                )
            tmp = fh.name
        try:
            with open(tmp, "rb") as fh:
                upload_id = http.request(
                    "POST", "/v1/fp/process/", files={"filepond": ("notes.jsonl", fh, "application/json")}
                )
        finally:
            os.unlink(tmp)
        task = http.request(
            "POST",
            f"/v1/projects/{pid}/upload",
            json={
                "format": "JSONL",
                "task": "SequenceLabeling",
                "uploadIds": [str(upload_id).strip()],
                "column_data": "text",
                "column_label": "label",
                "delimiter": "",
                "encoding": "utf_8",
            },
        )
        deadline = time.monotonic() + timeout
        while True:
            st = http.request("GET", f"/v1/tasks/status/{task['task_id']}")
            if st.get("ready"):
                if st.get("error"):
                    raise DoccanoError(f"Doccano import into project {pid} failed: {st['error']}")
                errors = (st.get("result") or {}).get("error") or []
                if errors:
                    raise DoccanoError(f"Doccano import into project {pid} reported errors: {errors[:3]}")
                return
            if time.monotonic() > deadline:
                raise DoccanoError(
                    f"Doccano import task {task['task_id']} at {self.url} not finished after {timeout:.0f}s "
                    "(is the task worker running? scripts/doccano.sh status)"
                )
            time.sleep(0.2)

    def progress(self, pid: int) -> list[dict[str, Any]]:
        data = self.http.request("GET", f"/v1/projects/{pid}/metrics/member-progress") or {}
        return list(data.get("progress", [])) if isinstance(data, dict) else list(data)
