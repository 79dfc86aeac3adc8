"""Doccano round trip: project sync, push of pre-annotations, pull of human labels.

This is the only module that talks to Doccano (1.8.4, REST API under ``/v1``).

Design (measured on doccano 1.8.4, see ``scripts/bench_doccano.py``)
---------------------------------------------------------------------
* **One example per note.** The admin uploads the note texts once through
  Doccano's bulk import (a JSONL file through ``/v1/fp/process/`` and
  ``/v1/projects/<id>/upload``, run by the celery worker); each example carries
  ``meta.note_id``. Example ids are kept in the store (``DoccanoLinkRow``), and
  an interrupted import is recovered by matching ``meta.note_id`` of the
  examples already on the server, so nothing is imported twice.
* **Each annotator's own pre-annotations.** The project runs with
  collaborative annotation off, so every span belongs to the user who created
  it and each annotator sees only their own labels. Doccano has no way for an
  admin to create spans owned by another user, and importing once per
  annotator would duplicate the notes, so pre-annotations are created *in the
  annotator's name* through the REST API: one token-authenticated HTTP session
  per annotator, several worker threads per session, against a multi-worker
  gunicorn server. Chosen over Doccano's auto-labeling hook because the
  auto-labeling answer only lands when the annotator opens the example (the
  pre-annotations would not be "in place" before, their model version could
  change between push and opening, and a loopback service would have to stay
  up for the whole annotation period); the REST way puts every suggestion in
  place at push time and is resumable: the link row records which annotators
  already have their spans, and a resumed push first deletes a partial set.
* **Attributes** (guideline, "How attributes appear in Doccano"): extra span
  labels on exactly the same offsets named ``negation:negated``,
  ``negation:possible``, ``temporality:historical``, ``temporality:hypothetical``,
  ``experiencer:family``, ``experiencer:other``; absent = default. They are
  created as span types, so annotators see and correct them in the UI.
* **Assignment / overlap.** Doccano 1.8.4 has no per-example assignment; every
  member can open every example. We assign each note to ``overlap`` annotators
  (round robin), every note with a safety-critical label to all annotators, and
  only the assigned annotators get pre-annotations; pull reads every note an
  annotator marked done (Doccano's "confirmed" example state).
* **Users.** Missing annotators are created through the admin-only
  ``/v1/users/create`` endpoint (or ``scripts/doccano.sh adduser NAME PASSWORD``).

Credentials (never command-line arguments, never logged)
--------------------------------------------------------
``DOCCANO_URL`` (default ``http://127.0.0.1:8000`` or the project's
``doccano.url``), ``DOCCANO_ADMIN_USER`` / ``DOCCANO_ADMIN_PASSWORD`` (local
defaults admin/password), annotator passwords from ``DOCCANO_USER_PASSWORDS``
(``alice:pw1,bob:pw2``) or a YAML/JSON file named by ``DOCCANO_CREDENTIALS_FILE``
(``{admin_user:..., admin_password:..., users: {alice: pw1}}``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace, dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import select

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline, LabelSchema
from clinical_nlp.edits import edit_summary
from clinical_nlp.errors import DoccanoError, InputFormatError, PolicyError
from clinical_nlp.io.jsonl import iter_json_rows, row_to_annotated, write_rows
from clinical_nlp.store import DoccanoLinkRow, Store
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, ATTRIBUTE_VALUES, AnnotatedNote, Annotation, Span

DEFAULT_URL = "http://127.0.0.1:8000"
ROLES = ("annotator", "annotation_approver", "project_admin")
_ROLE_ALIASES = {"approver": "annotation_approver", "admin": "project_admin"}
ATTRIBUTE_LABEL_SEP = ":"


# --------------------------------------------------------------------------- credentials
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


# --------------------------------------------------------------------------- HTTP
class _Http:
    """A token-authenticated session with retries (backoff) where safe."""

    def __init__(self, url: str, username: str, password: str, *, retries: int = 3, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.username = username
        self.retries = retries
        self.timeout = timeout
        self._local = threading.local()
        resp = self._raw("POST", "/v1/auth/login/", json={"username": username, "password": password}, auth=False)
        if resp.status_code != 200:
            raise DoccanoError(f"{self.url}: login as {username!r} failed (HTTP {resp.status_code}): {resp.text[:200]}")
        self.token = resp.json().get("key")
        # token auth only: a session cookie would make Django enforce CSRF on every write
        self._session().cookies.clear()
        if not self.token:
            raise DoccanoError(f"{self.url}: login as {username!r} returned no token")

    def _session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            self._local.s = s
        return s

    def _raw(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if auth:
            headers["Authorization"] = f"Token {self.token}"
        full = self.url + path
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                session = self._session()
                resp = session.request(method, full, headers=headers, timeout=self.timeout, **kw)
                session.cookies.clear()
            except requests.ConnectionError as exc:
                # safe to retry: a refused/failed connection sent nothing (POSTs too, see resume logic)
                if attempt == self.retries:
                    raise DoccanoError(f"Doccano server at {self.url} is unreachable ({method} {path}): {exc}") from None
            except requests.RequestException as exc:
                raise DoccanoError(f"Doccano request {method} {full} failed: {exc}") from None
            else:
                if resp.status_code in (502, 503, 504) and method in ("GET", "DELETE") and attempt < self.retries:
                    pass
                else:
                    return resp
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, ok: Sequence[int] = (200, 201, 204), **kw: Any) -> Any:
        resp = self._raw(method, path, **kw)
        if resp.status_code not in ok:
            raise DoccanoError(
                f"Doccano {method} {self.url}{path} as {self.username!r} answered HTTP {resp.status_code}: {resp.text[:300]}"
            )
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def get_all(self, path: str, params: Mapping[str, Any] | None = None, page: int = 500) -> Iterator[dict[str, Any]]:
        """Follow LimitOffset pagination."""
        offset = 0
        while True:
            data = self.request("GET", path, params={**(params or {}), "limit": page, "offset": offset})
            if isinstance(data, list):
                yield from data
                return
            yield from data["results"]
            offset += page
            if not data.get("next"):
                return


# --------------------------------------------------------------------------- attribute encoding
def attribute_label_names(schema: LabelSchema | None = None) -> list[str]:
    """``negation:negated`` … : one span label per non-default attribute value."""
    names = []
    attrs = schema.attributes if schema is not None and schema.attributes else None
    for attr, values in ATTRIBUTE_VALUES.items():
        allowed = attrs[attr].values if attrs and attr in attrs else values
        default = attrs[attr].default if attrs and attr in attrs else ATTRIBUTE_DEFAULTS[attr]
        names += [f"{attr}{ATTRIBUTE_LABEL_SEP}{v}" for v in allowed if v != default]
    return names


def encode_spans(spans: Iterable[Span]) -> list[tuple[int, int, str]]:
    """Our spans → Doccano (start, end, label) triples, attributes as extra labels."""
    out: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int, str]] = set()
    for s in spans:
        triples = [(s.start, s.end, s.label)]
        for attr, value in sorted(s.attributes.items()):
            if attr in ATTRIBUTE_DEFAULTS and value != ATTRIBUTE_DEFAULTS[attr]:
                triples.append((s.start, s.end, f"{attr}{ATTRIBUTE_LABEL_SEP}{value}"))
        for t in triples:
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def decode_spans(text: str, triples: Iterable[tuple[int, int, str]]) -> tuple[Span, ...]:
    """Doccano triples → our spans; attribute labels attach to entity spans on the same offsets.

    An attribute label with no entity span on its offsets is an annotator error
    and raises :class:`DoccanoError` naming the offsets.
    """
    entities: list[tuple[int, int, str]] = []
    attrs: dict[tuple[int, int], dict[str, str]] = {}
    for start, end, label in triples:
        name, sep, value = label.partition(ATTRIBUTE_LABEL_SEP)
        if sep and name in ATTRIBUTE_VALUES:
            attrs.setdefault((start, end), {})[name] = value
        else:
            entities.append((start, end, label))
    covered = {(a, b) for a, b, _ in entities}
    for key in attrs:
        if key not in covered:
            raise DoccanoError(f"attribute label(s) {attrs[key]} at [{key[0]}, {key[1]}) have no entity span on the same offsets")
    spans = [
        Span(a, b, lab, text[a:b], dict(attrs.get((a, b), {})))
        for a, b, lab in sorted(set(entities))
    ]
    return tuple(spans)


# --------------------------------------------------------------------------- annotator session
class AnnotatorSession:
    """Acts through the REST API as one user in one project.

    Example (needs a server)::

        s = AnnotatorSession(url, "alice", pw, project_id)
        for ex in s.examples(): ...
        s.add_span(ex["id"], 0, 5, "Condition"); s.mark_done(ex["id"])
    """

    def __init__(self, url: str, username: str, password: str, project_id: int, *, http: _Http | None = None):
        self.http = http or _Http(url, username, password)
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
        return [(s["start_offset"], s["end_offset"], names.get(s["label"], str(s["label"]))) for s in self.spans(example_id)]

    def read(self, example_id: int, text: str) -> tuple[Span, ...]:
        """This user's spans on an example decoded into :class:`Span` (attributes attached)."""
        return decode_spans(text, self.triples(example_id))

    def add_span(self, example_id: int, start: int, end: int, label: str) -> int:
        ids = self.label_ids()
        if label not in ids:
            raise DoccanoError(f"label {label!r} is not a span type of Doccano project {self.project_id}")
        data = self.http.request(
            "POST", f"{self._p}/examples/{example_id}/spans",
            json={"label": ids[label], "start_offset": start, "end_offset": end},
        )
        return int(data["id"])

    def delete_span(self, example_id: int, span_id: int) -> None:
        self.http.request("DELETE", f"{self._p}/examples/{example_id}/spans/{span_id}")

    def update_span(self, example_id: int, span_id: int, *, start: int | None = None,
                    end: int | None = None, label: str | None = None) -> None:
        body: dict[str, Any] = {}
        if start is not None:
            body["start_offset"] = start
        if end is not None:
            body["end_offset"] = end
        if label is not None:
            body["label"] = self.label_ids()[label]
        self.http.request("PATCH", f"{self._p}/examples/{example_id}/spans/{span_id}", json=body)

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


# --------------------------------------------------------------------------- admin / project sync
class DoccanoServer:
    """Admin access: projects, labels, members, users, imports."""

    def __init__(self, creds: DoccanoCredentials | None = None):
        self.creds = creds or DoccanoCredentials.from_env()
        self.url = self.creds.url
        self.http = _Http(self.url, self.creds.admin_user, self.creds.admin_password)

    def find_project(self, name: str) -> dict[str, Any] | None:
        for p in self.http.get_all("/v1/projects", {"q": name}):
            if p.get("name") == name:
                return p
        return None

    def sync_project(self, name: str, guideline: Guideline,
                     members: Mapping[str, str] | None = None) -> int:
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
        data = self.http.request("POST", "/v1/users/create", json={
            "username": username, "email": f"{username}@example.invalid", "password1": pw, "password2": pw,
        })
        return int(data["id"])

    def add_member(self, pid: int, username: str, role: str) -> None:
        role = _ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            raise DoccanoError(f"unknown Doccano role {role!r} (use one of {ROLES})")
        uid = self.user_id(username)
        roles = {r["name"]: r["id"] for r in self.http.request("GET", "/v1/roles")}
        for m in self.http.request("GET", f"/v1/projects/{pid}/members"):
            if m["user"] == uid:
                if m["rolename"] != role:
                    self.http.request("PUT", f"/v1/projects/{pid}/members/{m['id']}",
                                      json={"user": uid, "role": roles[role]})
                return
        self.http.request("POST", f"/v1/projects/{pid}/members", json={"user": uid, "role": roles[role]})

    def examples_by_note(self, pid: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for ex in self.http.get_all(f"/v1/projects/{pid}/examples"):
            nid = (ex.get("meta") or {}).get("note_id")
            if nid is not None:
                out.setdefault(str(nid), int(ex["id"]))
        return out

    def import_texts(self, pid: int, notes: Sequence[tuple[str, str, Sequence[tuple[int, int, str]]]], *,
                     http: _Http | None = None, timeout: float = 600.0) -> None:
        """Bulk-import ``(note_id, text, labels)`` (one JSONL upload, run by the celery worker).

        The labels belong to the user who imports (``http``'s user; default the admin).
        """
        if not notes:
            return
        http = http or self.http
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as fh:
            for nid, text, labels in notes:
                fh.write(json.dumps({"text": text, "label": [list(t) for t in labels], "note_id": nid},
                                    ensure_ascii=False) + "\n")
            tmp = fh.name
        try:
            with open(tmp, "rb") as fh:
                upload_id = http.request("POST", "/v1/fp/process/",
                                         files={"filepond": ("notes.jsonl", fh, "application/json")})
        finally:
            os.unlink(tmp)
        task = http.request("POST", f"/v1/projects/{pid}/upload", json={
            "format": "JSONL", "task": "SequenceLabeling", "uploadIds": [str(upload_id).strip()],
            "column_data": "text", "column_label": "label", "delimiter": "", "encoding": "utf_8",
        })
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


# --------------------------------------------------------------------------- push / pull
@dataclass
class PushReport:
    project: str
    project_id: int
    notes: int = 0
    imported: int = 0
    skipped_already_pushed: int = 0
    spans_created: int = 0
    import_seconds: float = 0.0
    assignments: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


def assign(notes: Sequence[AnnotatedNote], annotators: Sequence[str], overlap: int,
           safety_critical: set[str]) -> dict[str, list[str]]:
    """note id → annotators: ``overlap`` of them round robin; all if a safety-critical label occurs."""
    if not annotators:
        raise DoccanoError("no annotators given")
    k = max(1, min(overlap, len(annotators)))
    out: dict[str, list[str]] = {}
    n = 0  # consecutive blocks of k annotators, wrapping around: equal load
    for doc in notes:
        if any(s.label in safety_critical for s in doc.spans):
            out[doc.id] = list(annotators)
        else:
            out[doc.id] = [annotators[(n * k + j) % len(annotators)] for j in range(k)]
            n += 1
    return out


def _links(store: Store, project: str) -> dict[str, DoccanoLinkRow]:
    with store.session() as s:
        return {r.note_id: r for r in s.scalars(select(DoccanoLinkRow).where(DoccanoLinkRow.project == project))}


def _save_link(store: Store, project: str, note_id: str, example_id: int, state: dict[str, Any]) -> None:
    with store.session() as s:
        row = s.scalars(select(DoccanoLinkRow).where(
            DoccanoLinkRow.project == project, DoccanoLinkRow.note_id == note_id)).first()
        if row is None:
            s.add(DoccanoLinkRow(project=project, note_id=note_id, example_id=example_id, state=state))
        else:
            row.example_id, row.state = example_id, dict(state)


def read_preannotations(path: Path | str) -> list[tuple[AnnotatedNote, dict[str, Any]]]:
    """Rows of ``clinical-nlp preannotate`` output, spans verified against the text."""
    out = []
    for line, row in iter_json_rows(path):
        doc = row_to_annotated(row, source=str(path), line=line).verified()
        out.append((doc, row))
    if not out:
        raise InputFormatError("no notes in the file", source=str(path))
    return out


def push(
    store: Store,
    guideline: Guideline,
    project_name: str,
    rows: Sequence[tuple[AnnotatedNote, Mapping[str, Any]]],
    annotators: Sequence[str],
    *,
    overlap: int = 2,
    creds: DoccanoCredentials | None = None,
    require_deid: bool = True,
    allow_phi: bool = False,
    actor: str | None = None,
    phi_access_check: Callable[[str], bool] | None = None,
    threads_per_annotator: int = 4,
    progress: Callable[[int], None] | None = None,
) -> PushReport:
    """Send notes with each assigned annotator's own pre-annotations to Doccano.

    Idempotent and resumable: notes already linked are not re-imported and
    annotators whose pre-annotations are recorded as in place are skipped.
    Raises :class:`PolicyError` for notes not de-identified (unless
    ``allow_phi`` with an ``actor`` that passes ``phi_access_check``; by default
    the actor must be registered with PHI access in the annotator registry).
    """
    t0 = time.perf_counter()
    annotators = [a.strip() for a in annotators if a.strip()]
    audit = AuditLog(store)
    actor = actor or os.environ.get("CLINICAL_NLP_ACTOR")
    phi = [d.id for d, row in rows if require_deid and not (row.get("deidentified") is True or store.is_deidentified(d.id))]
    if phi:
        if not allow_phi:
            raise PolicyError(
                f"{len(phi)} note(s) are not marked de-identified (first: {phi[:3]}); de-identify them, "
                "or pass --allow-phi with --actor (a user with PHI access)"
            )
        if not actor:
            raise PolicyError("--allow-phi needs an actor name (--actor or CLINICAL_NLP_ACTOR)")
        if phi_access_check is None:  # default: the annotator registry's phi_access flag
            from clinical_nlp.annotators import has_phi_access

            def phi_access_check(who: str) -> bool:
                return has_phi_access(store, who)
        if not phi_access_check(actor):
            raise PolicyError(f"actor {actor!r} has no PHI access; refusing to push {len(phi)} identifiable note(s)")
        audit.append("override", actor=actor, details={"rule": "require_deid", "project": project_name, "notes": phi})
    _validate_labels(rows, guideline.schema)
    # Doccano holds one span per (offsets, label): identical duplicates collapse there, so collapse
    # them here too, or an annotator who changes nothing would show a "deleted" edit on pull.
    rows = [(_dedupe_spans(d), row) for d, row in rows]
    creds = creds or DoccanoCredentials.from_env()
    for a in annotators:
        creds.password(a)  # fail before touching the server
    # local store first: it is the source of truth, written before the server is contacted
    deid_ids = {d.id for d, row in rows if row.get("deidentified") is True}
    store.add_notes([d.note for d, _ in rows if d.id in deid_ids], deidentified=True)
    store.add_notes([d.note for d, _ in rows if d.id not in deid_ids])
    server = DoccanoServer(creds)
    pid = server.sync_project(project_name, guideline, {a: "annotator" for a in annotators})
    docs = [d for d, _ in rows]
    plan = assign(docs, annotators, overlap, guideline.schema.safety_critical)
    report = PushReport(project=project_name, project_id=pid, notes=len(docs))
    for a in annotators:
        report.assignments[a] = [nid for nid, who in plan.items() if a in who]
    links = _links(store, project_name)
    missing = [d for d in docs if d.id not in links]
    sessions = {a: AnnotatorSession(creds.url, a, creds.password(a), pid) for a in annotators}
    to_import: list[AnnotatedNote] = []
    if missing:
        on_server = server.examples_by_note(pid)  # recovers an import interrupted before linking
        to_import = [d for d in missing if d.id not in on_server]
        t_import = time.perf_counter()
        # texts only, by the admin (doccano 1.8.4 answers 403 to an annotator's import, so the
        # first annotator cannot import the note together with their own pre-annotations)
        server.import_texts(pid, [(d.id, d.text, ()) for d in to_import])
        report.import_seconds = time.perf_counter() - t_import
        report.imported = len(to_import)
        if to_import:
            on_server = server.examples_by_note(pid)
        for d in missing:
            if d.id not in on_server:
                raise DoccanoError(f"note {d.id!r} was imported into Doccano project {project_name!r} but is not listed")
            _save_link(store, project_name, d.id, on_server[d.id], {"assigned": plan[d.id], "pre": {}})
        links = _links(store, project_name)
    model_versions = {d.id: (row.get("model_version") or _model_version(d)) for d, row in rows}
    by_id = {d.id: d for d in docs}
    fresh = {d.id for d in to_import}  # examples created by this run: nobody's spans on them yet
    imported_pairs: list[tuple[str, str, int]] = []  # (annotator, note, spans) placed by an import
    states = {nid: dict(r.state or {}) for nid, r in links.items()}
    for a, nid, _ in imported_pairs:
        states[nid].setdefault("pre", {})[a] = True  # (persisted by flush below)
    jobs: list[tuple[str, str]] = []
    for a in annotators:
        sessions[a].label_ids()
        for nid in report.assignments[a]:
            if states[nid].get("pre", {}).get(a):
                if nid not in fresh:
                    report.skipped_already_pushed += 1
            else:
                jobs.append((a, nid))

    def one(job: tuple[str, str]) -> tuple[str, str, int]:
        annotator, nid = job
        session = sessions[annotator]
        eid = links[nid].example_id
        if nid not in fresh:  # may hold a partial set from an interrupted push: start clean
            for sp in session.spans(eid):
                session.delete_span(eid, int(sp["id"]))
        n = 0
        for start, end, label in encode_spans(by_id[nid].spans):
            session.add_span(eid, start, end, label)
            n += 1
        return annotator, nid, n

    def flush(batch: list[tuple[str, str, int]]) -> None:
        # the pre-annotation records first, then the "in place" flags (a crash in between only redoes work)
        for annotator, nid, _ in batch:
            store.save_annotation(Annotation(
                item=nid, annotator=annotator, payload=tuple(by_id[nid].spans),
                source=f"model:{model_versions[nid]}", guideline_version=guideline.version,
                model_version=model_versions[nid]), kind="pre")
        with store.session() as s:
            rows_by_note = {r.note_id: r for r in s.scalars(select(DoccanoLinkRow).where(
                DoccanoLinkRow.project == project_name,
                DoccanoLinkRow.note_id.in_([nid for _, nid, _ in batch])))}
            for annotator, nid, _ in batch:
                st = states[nid]
                st.setdefault("assigned", plan[nid])
                st["pre"] = {**st.get("pre", {}), annotator: True}
                rows_by_note[nid].state = dict(st)
        if progress:
            progress(len(batch))

    if imported_pairs:
        report.spans_created += sum(n for _, _, n in imported_pairs)
        for i in range(0, len(imported_pairs), 100):
            flush(imported_pairs[i:i + 100])
    # interleave annotators so both advance together; HTTP in threads, store writes here
    order = {d.id: i for i, d in enumerate(docs)}
    jobs.sort(key=lambda j: (order[j[1]], j[0]))
    batch: list[tuple[str, str, int]] = []
    with ThreadPoolExecutor(max_workers=max(1, threads_per_annotator * len(annotators))) as pool:
        for result in pool.map(one, jobs):
            report.spans_created += result[2]
            batch.append(result)
            if len(batch) >= 100:
                flush(batch)
                batch = []
    if batch:
        flush(batch)
    report.seconds = time.perf_counter() - t0
    audit.append("doccano.push", actor=actor or creds.admin_user, details={
        "project": project_name, "doccano_project_id": pid, "url": creds.url, "notes": len(docs),
        "imported": report.imported, "spans_created": report.spans_created,
        "annotators": annotators, "overlap": overlap, "guideline_version": guideline.version,
    })
    return report


def _dedupe_spans(doc: AnnotatedNote) -> AnnotatedNote:
    """Drop spans identical to an earlier one in offsets, label and attributes."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for sp in doc.spans:
        key = (sp.start, sp.end, sp.label, tuple(sorted(sp.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(sp)
    return doc if len(kept) == len(doc.spans) else replace(doc, spans=tuple(kept))


def _validate_labels(rows: Sequence[tuple[AnnotatedNote, Mapping[str, Any]]], schema: LabelSchema) -> None:
    """Every span label and attribute value must exist in the schema (they become Doccano labels)."""
    names = set(schema.label_names)
    for doc, _ in rows:
        for sp in doc.spans:
            if sp.fragments is not None:
                raise InputFormatError(f"note {doc.id!r}: discontinuous span {sp.label!r} {list(sp.fragments)} "
                                       "cannot be shown in Doccano 1.8.4 (contiguous spans only)")
            if sp.label not in names:
                raise InputFormatError(f"note {doc.id!r}: span [{sp.start}, {sp.end}) has label {sp.label!r} "
                                       f"not in the label schema {sorted(names)}")
            for attr, value in sp.attributes.items():
                allowed = schema.attributes[attr].values if attr in schema.attributes else ATTRIBUTE_VALUES.get(attr)
                if allowed is not None and value not in allowed:
                    raise InputFormatError(f"note {doc.id!r}: span {sp.label!r} [{sp.start}, {sp.end}) has "
                                           f"{attr}={value!r}, allowed: {list(allowed)}")


def _model_version(doc: AnnotatedNote) -> str | None:
    sources = sorted({s.source for s in doc.spans if s.source})
    return ",".join(sources) or None


def pull(
    store: Store,
    guideline: Guideline,
    project_name: str,
    *,
    annotators: Sequence[str] | None = None,
    creds: DoccanoCredentials | None = None,
    actor: str | None = None,
    threads: int = 4,
) -> list[dict[str, Any]]:
    """Fetch each annotator's labels on notes they marked done; store and return rows.

    One row per (note, annotator): ``id``, ``annotator``, ``text``, ``spans``
    (flat attribute keys), ``edits``, ``guideline_version``, ``model_version``,
    ``timestamp``. Offsets are verified against the store's copy of the text.
    """
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    proj = server.find_project(project_name)
    if proj is None:
        raise DoccanoError(f"Doccano project {project_name!r} does not exist at {creds.url}")
    pid = int(proj["id"])
    links = _links(store, project_name)
    by_example = {r.example_id: r for r in links.values()}
    if annotators is None:
        annotators = sorted({a for r in links.values() for a in (r.state or {}).get("assigned", [])})
    rows: list[dict[str, Any]] = []
    for annotator in annotators:
        session = AnnotatorSession(creds.url, annotator, creds.password(annotator), pid)
        session.label_ids()
        done = [ex for ex in session.examples(confirmed=True) if int(ex["id"]) in by_example]
        with ThreadPoolExecutor(max_workers=threads) as pool:  # reads only: safe to parallelise
            fetched = list(pool.map(lambda ex, _s=session: _s.triples(int(ex["id"])), done))
        for ex, triples in zip(done, fetched, strict=True):
            link = by_example[int(ex["id"])]
            note = store.get_note(link.note_id)
            if ex.get("text") != note.text:
                raise DoccanoError(
                    f"Doccano example {ex['id']} (note {link.note_id!r}) text differs from the store's copy"
                )
            try:
                spans = decode_spans(note.text, triples)
                for sp in spans:
                    if sp.end > len(note.text):
                        raise DoccanoError(f"span {sp.label!r} [{sp.start}, {sp.end}) ends beyond the text")
            except DoccanoError as exc:
                raise DoccanoError(f"note {link.note_id!r}, annotator {annotator!r}: {exc}") from None
            pre = store.annotations(kind="pre", item=link.note_id, annotator=annotator)
            pre_spans = pre[0].spans if pre else ()
            model_version = pre[0].model_version if pre else None
            edits = edit_summary(pre_spans, spans)
            ann = Annotation(item=link.note_id, annotator=annotator, payload=spans, source="human",
                             guideline_version=guideline.version, model_version=model_version, edits=edits)
            store.save_annotation(ann, kind="human")
            rows.append({
                "id": link.note_id, "annotator": annotator, "text": note.text,
                "spans": [{"start": s.start, "end": s.end, "label": s.label, "text": s.text,
                           **{k: s.attributes.get(k, ATTRIBUTE_DEFAULTS[k]) for k in ATTRIBUTE_DEFAULTS}}
                          for s in spans],
                "edits": edits, "guideline_version": guideline.version,
                "model_version": model_version, "timestamp": ann.timestamp,
                "doccano_example_id": int(ex["id"]),
            })
    AuditLog(store).append("doccano.pull", actor=actor or os.environ.get("CLINICAL_NLP_ACTOR") or creds.admin_user,
                           details={"project": project_name, "url": creds.url, "rows": len(rows),
                                    "annotators": list(annotators)})
    return rows


def write_pull(rows: Sequence[Mapping[str, Any]], path: Path | str) -> int:
    """Write pull rows atomically (no partial file on error)."""
    return write_rows(path, rows)


def status(store: Store, project_name: str, *, creds: DoccanoCredentials | None = None) -> dict[str, Any]:
    """Progress per annotator: assigned, pre-annotations in place, done (from Doccano)."""
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    proj = server.find_project(project_name)
    if proj is None:
        raise DoccanoError(f"Doccano project {project_name!r} does not exist at {creds.url}")
    links = _links(store, project_name)
    per: dict[str, dict[str, int]] = {}
    for r in links.values():
        st = r.state or {}
        for a in st.get("assigned", []):
            d = per.setdefault(a, {"assigned": 0, "pre_in_place": 0, "done": 0})
            d["assigned"] += 1
            d["pre_in_place"] += 1 if st.get("pre", {}).get(a) else 0
    for m in server.progress(int(proj["id"])):
        name = m.get("user")
        if name in per:
            per[name]["done"] = int(m.get("done", 0))
    return {"project": project_name, "doccano_project_id": int(proj["id"]), "notes": len(links), "annotators": per}
