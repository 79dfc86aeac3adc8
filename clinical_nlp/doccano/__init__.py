"""Doccano round trip: project sync, push of pre-annotations, pull of human labels.

This package is the only code that talks to Doccano (1.8.4, REST API under ``/v1``):
``credentials`` (URL and passwords from the environment), ``http`` (token login,
urllib3 ``Retry``), ``codec`` (attribute labels <-> spans), ``client`` (an
annotator's session, the admin's project sync and bulk import) and ``sync``
(push / pull / status orchestration over the store).

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
"""

from clinical_nlp.doccano.client import DOCCANO_ROLES, AnnotatorSession, DoccanoServer
from clinical_nlp.doccano.codec import (
    ATTRIBUTE_LABEL_SEP,
    attribute_label_names,
    decode_triples,
    encode_spans,
)
from clinical_nlp.doccano.credentials import DEFAULT_URL, DoccanoCredentials
from clinical_nlp.doccano.http import DoccanoHttp
from clinical_nlp.doccano.pull import pull, pull_problems, write_pull
from clinical_nlp.doccano.sync import (
    PushReport,
    assign,
    push,
    read_preannotations,
    status,
)
from clinical_nlp.errors import DoccanoError
from clinical_nlp.types import ATTRIBUTE_DEFAULTS

__all__ = [
    "ATTRIBUTE_DEFAULTS",
    "ATTRIBUTE_LABEL_SEP",
    "DEFAULT_URL",
    "DOCCANO_ROLES",
    "AnnotatorSession",
    "DoccanoCredentials",
    "DoccanoError",
    "DoccanoHttp",
    "DoccanoServer",
    "PushReport",
    "assign",
    "attribute_label_names",
    "decode_triples",
    "encode_spans",
    "pull",
    "pull_problems",
    "push",
    "read_preannotations",
    "status",
    "write_pull",
]
