"""Typed access to one Doccano server: an annotator's session and the admin's project sync."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from clinical_nlp.config import Guideline, LabelSchema
from clinical_nlp.doccano.codec import attribute_label_names, attribute_pairs, decode_triples
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.doccano.http import DoccanoHttp
from clinical_nlp.doccano.offsets import to_doccano
from clinical_nlp.errors import DoccanoError
from clinical_nlp.io.attribute_labels import attribute_label, legend_markdown
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
        self._relation_type_ids: dict[str, int] | None = None

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

    def _type_id(self, ids: dict[str, int], name: str, what: str) -> int:
        if name not in ids:
            raise DoccanoError(f"{what} {name!r} is not in Doccano project {self.project_id}")
        return ids[name]

    def add_span(self, example_id: int, start: int, end: int, label: str) -> int:
        """A span as the UI makes it: offsets in Doccano's UTF-16 units (``offsets.to_doccano``)."""
        body = {"label": self._type_id(self.label_ids(), label, "span type"), "start_offset": start, "end_offset": end}
        return int(self.http.request("POST", f"{self._p}/examples/{example_id}/spans", json=body)["id"])

    def delete_span(self, example_id: int, span_id: int) -> None:
        self.http.request("DELETE", f"{self._p}/examples/{example_id}/spans/{span_id}")

    def find_span(self, example_id: int, start: int, end: int, label: str) -> int | None:
        ids = self.label_ids()
        for s in self.spans(example_id):
            if (s["start_offset"], s["end_offset"], s["label"]) == (start, end, ids.get(label)):
                return int(s["id"])
        return None

    def relation_type_ids(self) -> dict[str, int]:
        if self._relation_type_ids is None:
            self._relation_type_ids = {t["text"]: t["id"] for t in self.http.get_all(f"{self._p}/relation-types")}
        return self._relation_type_ids

    def relations(self, example_id: int) -> list[dict[str, Any]]:
        """The example's raw Doccano relations (id, from_id, to_id = span ids, type = relation type id)."""
        return self.http.request("GET", f"{self._p}/examples/{example_id}/relations") or []

    def add_relation(self, example_id: int, from_span: int, to_span: int, kind: str) -> int:
        """Link two spans of the example (Doccano span ids) with relation type ``kind``; the new relation's id."""
        kind_id = self._type_id(self.relation_type_ids(), kind, "relation type")
        body = {"from_id": from_span, "to_id": to_span, "type": kind_id, "example": example_id}
        return int(self.http.request("POST", f"{self._p}/examples/{example_id}/relations", json=body)["id"])

    def change_relation_type(self, example_id: int, relation_id: int, kind: str) -> None:
        kind_id = self._type_id(self.relation_type_ids(), kind, "relation type")
        self.http.request("PATCH", f"{self._p}/examples/{example_id}/relations/{relation_id}", json={"type": kind_id})

    def delete_relation(self, example_id: int, relation_id: int) -> None:
        self.http.request("DELETE", f"{self._p}/examples/{example_id}/relations/{relation_id}")

    def add_comment(self, example_id: int, text: str) -> None:
        """Comment on an example as this user (Doccano's export carries it as ``Comments``)."""
        self.http.request("POST", f"{self._p}/comments", params={"example": example_id}, json={"text": text})

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

    def sync_project(
        self,
        name: str,
        guideline: Guideline,
        members: Mapping[str, str] | None = None,
        *,
        collaborative: bool = True,
    ) -> int:
        """Create or update project ``name`` from the label schema; returns its id.

        Labels (with colours) and attribute labels are created if missing and
        recoloured if changed; overlapping spans are allowed, ``collaborative``
        annotation is on by default (every member sees and may change the spans
        the engine imported), and the guideline markdown (with its version) is the
        project's guideline page. ``members`` maps user name → role (annotator,
        approver/annotation_approver, project_admin); the users must exist.
        """
        body = {
            "name": name,
            "description": f"clinical-nlp project {name} (guideline {guideline.version})",
            "guideline": f"<!-- guideline version {guideline.version} -->\n\n"
            f"{legend_markdown(attribute_pairs(guideline.schema))}\n{guideline.text}",
            "project_type": "SequenceLabeling",
            "resourcetype": "SequenceLabelingProject",
            "allow_overlapping": True,
            "collaborative_annotation": collaborative,
            "random_order": False,
            "grapheme_mode": False,
            "use_relation": bool(guideline.schema.relations),
        }
        existing = self.find_project(name)
        if existing is None:
            pid = int(self.http.request("POST", "/v1/projects", json=body)["id"])
        else:
            pid = int(existing["id"])
            self.http.request("PATCH", f"/v1/projects/{pid}", json=body)
        self._sync_labels(pid, guideline.schema)
        self._sync_relation_types(pid, guideline.schema)
        for user, role in (members or {}).items():
            self.add_member(pid, user, role)
        return pid

    def _sync_labels(self, pid: int, schema: LabelSchema) -> None:
        have = {t["text"]: t for t in self.http.get_all(f"/v1/projects/{pid}/span-types")}
        attribute_label_names(schema)  # refuses entity labels that clash with attribute labels
        wanted = [(lab.name, lab.color) for lab in schema.labels]
        for attr, value in attribute_pairs(schema):  # one colour per attribute: its values read as a group
            color = schema.attributes[attr].color if attr in schema.attributes else "#888888"
            wanted.append((attribute_label(attr, value), color))
        for text, color in wanted:
            body = {"text": text, "background_color": color, "text_color": "#ffffff"}
            if text not in have:
                self.http.request("POST", f"/v1/projects/{pid}/span-types", json=body)
            elif have[text].get("background_color", "").lower() != color.lower():
                self.http.request("PATCH", f"/v1/projects/{pid}/span-types/{have[text]['id']}", json=body)

    def _sync_relation_types(self, pid: int, schema: LabelSchema) -> None:
        """The schema's relation types (with colours) created if missing and recoloured if changed."""
        if not schema.relations:
            return
        have = {t["text"]: t for t in self.http.get_all(f"/v1/projects/{pid}/relation-types")}
        for rel in schema.relations:
            body = {"text": rel.name, "background_color": rel.color, "text_color": "#ffffff"}
            if rel.name not in have:
                self.http.request("POST", f"/v1/projects/{pid}/relation-types", json=body)
            elif have[rel.name].get("background_color", "").lower() != rel.color.lower():
                self.http.request("PATCH", f"/v1/projects/{pid}/relation-types/{have[rel.name]['id']}", json=body)

    def user_id(self, username: str) -> int:
        """The Doccano user id of ``username``; DoccanoError if the account does not exist.

        The engine never creates annotator accounts nor holds their passwords: a person
        creates their own (``scripts/doccano.sh adduser NAME``, or the Doccano admin page).
        """
        for u in self.http.get_all("/v1/users", {"q": username}):
            if u["username"] == username:
                return int(u["id"])
        raise DoccanoError(
            f"Doccano user {username!r} does not exist at {self.url}: the person creates the account "
            f"(bash scripts/doccano.sh adduser {username}, or the Doccano admin page); "
            "clinical-nlp holds no annotator passwords"
        )

    def missing_users(self, usernames: Sequence[str]) -> list[str]:
        """The names of ``usernames`` that have no Doccano account."""
        missing = []
        for name in usernames:
            try:
                self.user_id(name)
            except DoccanoError:
                missing.append(name)
        return missing

    def create_user(self, username: str, password: str) -> int:
        """Create an account (admin-only endpoint): for a person setting up their own login, and tests."""
        data = self.http.request(
            "POST",
            "/v1/users/create",
            json={
                "username": username,
                "email": f"{username}@example.invalid",
                "password1": password,
                "password2": password,
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
        """note id (``meta.note_id``) → example id, for every example of project ``pid``.

        Listed, not exported: the export task's latency (about 1.4 s even for an empty project)
        costs more than listing (1,000 examples in about 1.7 s)."""
        out: dict[str, int] = {}
        for ex in self.http.get_all(f"/v1/projects/{pid}/examples"):
            nid = (ex.get("meta") or {}).get("note_id")
            if nid is not None:
                out.setdefault(str(nid), int(ex["id"]))
        return out

    def wait_for_notes(self, pid: int, note_ids: Sequence[str], *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every note is listed in project ``pid``; whether they are."""
        deadline = time.monotonic() + timeout
        while True:
            listed = self.examples_by_note(pid)
            if all(nid in listed for nid in note_ids):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)

    def example_count(self, pid: int) -> int:
        """How many examples project ``pid`` holds (one request)."""
        data = self.http.request("GET", f"/v1/projects/{pid}/examples", params={"limit": 1})
        return int(data["count"]) if isinstance(data, dict) else len(data or [])

    def start_import(
        self,
        pid: int,
        notes: Sequence[tuple[str, str, Sequence[tuple[int, int, str]]]],
        *,
        meta: Mapping[str, Mapping[str, Any]] | None = None,
        relations: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> str:
        """Upload ``(note_id, text, labels)`` as one JSONL file and start Doccano's import task; its id.

        The labels become spans owned by the engine's user (in a collaborative project the
        annotator sees, keeps, changes or deletes them); ``meta.note_id`` names the note, and
        ``meta[note_id]`` adds fields to the example's metadata (shown beside the text). With
        ``relations`` (a project with relations on: note id → links ``{from_id, to_id, type}`` whose
        ids are positions in that note's labels) the file is Doccano's relation-import format.
        """
        reserved = ("text", "label", "note_id", "entities", "relations")
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as fh:
            for nid, text, our_labels in notes:
                labels = to_doccano(text, our_labels)  # the UI counts UTF-16 units
                extra = {k: v for k, v in (meta or {}).get(nid, {}).items() if k not in reserved}
                row: dict[str, Any] = {"text": text}
                if relations is None:
                    row["label"] = [list(t) for t in labels]
                else:
                    row["entities"] = [
                        {"id": k, "start_offset": a, "end_offset": b, "label": lab}
                        for k, (a, b, lab) in enumerate(labels)
                    ]
                    row["relations"] = [dict(r) for r in relations.get(nid, ())]
                row.update({**extra, "note_id": nid})
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            tmp = fh.name
        try:
            with open(tmp, "rb") as fh:
                upload_id = self.http.request(
                    "POST", "/v1/fp/process/", files={"filepond": ("notes.jsonl", fh, "application/json")}
                )
        finally:
            os.unlink(tmp)
        task = self.http.request(
            "POST",
            f"/v1/projects/{pid}/upload",
            json={
                "format": "JSONL",
                "task": "SequenceLabeling" if relations is None else "RelationExtraction",
                "uploadIds": [str(upload_id).strip()],
                "column_data": "text",
                "column_label": "label",
                "delimiter": "",
                "encoding": "utf_8",
            },
        )
        return str(task["task_id"])

    def wait_import(self, pid: int, task_id: str, *, timeout: float = 600.0) -> None:
        """Wait until import task ``task_id`` has finished; DoccanoError if it failed or reported errors."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.http.request("GET", f"/v1/tasks/status/{task_id}")
            if st.get("ready"):
                if st.get("error"):
                    raise DoccanoError(f"Doccano import into project {pid} failed: {st['error']}")
                errors = (st.get("result") or {}).get("error") or []
                if errors:
                    raise DoccanoError(f"Doccano import into project {pid} reported errors: {errors[:3]}")
                return
            if time.monotonic() > deadline:
                raise DoccanoError(
                    f"Doccano import task {task_id} at {self.url} not finished after {timeout:.0f}s "
                    "(is the task worker running? scripts/doccano.sh status)"
                )
            time.sleep(0.1)

    def import_texts(self, pid: int, notes: Sequence[tuple[str, str, Sequence[tuple[int, int, str]]]]) -> None:
        """Bulk-import and wait (see :meth:`start_import`)."""
        if notes:
            self.wait_import(pid, self.start_import(pid, notes))

    def export_confirmed(self, pid: int) -> list[dict[str, Any]]:
        """Every example marked done in project ``pid`` with every span on it (see :meth:`export`)."""
        return self.export(pid, confirmed_only=True)

    def export(self, pid: int, *, confirmed_only: bool, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Doccano's own dataset export (one task; ``exportApproved``: only examples marked done):
        rows ``{id, text, label: [[start, end, name]], **meta}`` (collaborative: every member's spans)."""
        task = self.http.request(
            "POST", f"/v1/projects/{pid}/download", json={"format": "JSONL", "exportApproved": confirmed_only}
        )
        deadline = time.monotonic() + timeout
        while True:
            resp = self.http._raw("GET", f"/v1/projects/{pid}/download", params={"taskId": task["task_id"]})
            if resp.status_code != 200:
                raise DoccanoError(f"Doccano export of project {pid} at {self.url} answered HTTP {resp.status_code}")
            if not resp.headers.get("Content-Type", "").startswith("application/json"):
                return _read_export(resp.content, pid)
            if time.monotonic() > deadline:
                raise DoccanoError(
                    f"Doccano export task {task['task_id']} at {self.url} not finished after {timeout:.0f}s "
                    "(is the task worker running? scripts/doccano.sh status)"
                )
            time.sleep(0.1)

    def example_states(self, pid: int, example_id: int) -> list[dict[str, Any]]:
        """Who marked the example done and when (``confirmed_by`` user id, ``confirmed_at``)."""
        return list(self.http.get_all(f"/v1/projects/{pid}/examples/{example_id}/states"))

    def last_activity(self, pid: int, uid: int, example_ids: Sequence[int], *, threads: int = 4) -> str | None:
        """The latest time user ``uid`` made or changed a span on, or marked done, one of the examples."""
        from concurrent.futures import ThreadPoolExecutor

        def latest(eid: int) -> str:
            base = f"/v1/projects/{pid}/examples/{eid}"
            times = [str(s.get("updated_at") or "") for s in self.http.request("GET", f"{base}/spans") or []
                     if s.get("user") == uid]  # fmt: skip
            times += [str(st.get("confirmed_at") or "") for st in self.example_states(pid, eid)
                      if st.get("confirmed_by") == uid]  # fmt: skip
            return max(times, default="")

        with ThreadPoolExecutor(max_workers=threads) as pool:
            found = max(pool.map(latest, example_ids), default="")
        return found or None

    def session(self, pid: int) -> AnnotatorSession:
        """The engine's own view of project ``pid`` (collaborative: every member's spans)."""
        return AnnotatorSession(self.url, self.creds.admin_user, "", pid, http=self.http)

    def progress(self, pid: int) -> list[dict[str, Any]]:
        data = self.http.request("GET", f"/v1/projects/{pid}/metrics/member-progress") or {}
        return list(data.get("progress", [])) if isinstance(data, dict) else list(data)


def _read_export(content: bytes, pid: int) -> list[dict[str, Any]]:
    """The JSONL rows of a Doccano export zip (collaborative projects: one ``all.jsonl``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            rows = []
            for name in zf.namelist():
                for line in zf.read(name).decode("utf-8").splitlines():
                    if line.strip():
                        rows.append(json.loads(line))
            return rows
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError) as exc:
        raise DoccanoError(f"Doccano export of project {pid} is not a readable JSONL zip: {exc}") from None
