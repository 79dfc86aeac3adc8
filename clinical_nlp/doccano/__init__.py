"""Doccano round trip: project sync, push of pre-annotations, pull of human labels.

This package is the only code that talks to Doccano (1.8.4, REST API under ``/v1``):
``credentials`` (URL and the engine's own login), ``http`` (token login, urllib3
``Retry``), ``codec`` (attribute labels <-> spans), ``client`` (the server as the
engine's user; a user's session in one project), ``links`` (the store's record of
what is where), ``sync`` (push, status) and ``pull``.

Design: no annotator password held (issue 18)
---------------------------------------------
* **One Doccano project per annotator** (``<doccano.project>--<annotator>``), with
  collaborative annotation on; the annotator is its only annotating member, the
  engine's user is its admin. Independence between annotators holds by construction:
  nobody sees another annotator's project.
* **One bulk import per annotator and push.** The engine uploads that annotator's
  assigned notes *with* their pre-annotations as one JSONL file (``/v1/fp/process/``,
  ``/v1/projects/<id>/upload``, run by Doccano's task worker). The spans belong to the
  engine's user; in a collaborative project the annotator sees, keeps, changes or
  deletes them like her own. Each example carries ``meta.note_id``.
* **Never writes into an example after its import**, so no re-run can overwrite an
  annotator's work. Resumable: the import's task id is recorded before it is awaited (a
  killed push waits for it on the re-run instead of importing twice), examples are
  linked by ``meta.note_id`` (``DoccanoExampleRow``, naming server and project), and a
  link whose example is not on the server as recorded (reset server, another server)
  is dropped and the note imported again.
* **Pull** reads, as the engine, every example its annotator marked done (checked
  against the example's states: ``confirmed_by`` is her user id; ``confirmed_at`` is
  the annotation's time) and every span on it; the edit summary compares it with the
  pre-annotation recorded at push.
* **Attributes** (guideline, "How attributes appear in Doccano"): extra span
  labels on exactly the same offsets, short enough for the label chip: ``NEG``
  (negated), ``POSS`` (possible), ``HIST`` (historical), ``HYPO`` (hypothetical),
  ``FAM`` (family), ``OTHER`` (experiencer other); absent = default. The project's
  guideline page starts with their legend; the long form ``negation:negated`` of older
  projects is still read.
* **Assignment / overlap.** Each note goes to ``overlap`` annotators (round robin),
  every note with a safety-critical label to all; only assigned annotators' projects
  receive it.
* **Users.** The engine never creates annotator accounts nor knows their passwords:
  each person creates their own (``scripts/doccano.sh adduser NAME``, which asks for the
  password, or the Doccano admin page); a push names the missing accounts and stops.
"""

from clinical_nlp.doccano.client import DOCCANO_ROLES, AnnotatorSession, DoccanoServer
from clinical_nlp.doccano.codec import (
    attribute_label_names,
    decode_triples,
    encode_spans,
)
from clinical_nlp.doccano.credentials import DEFAULT_URL, DoccanoCredentials
from clinical_nlp.doccano.http import DoccanoHttp
from clinical_nlp.doccano.links import annotator_project_name, example_links
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
    "DEFAULT_URL",
    "DOCCANO_ROLES",
    "AnnotatorSession",
    "DoccanoCredentials",
    "DoccanoError",
    "DoccanoHttp",
    "DoccanoServer",
    "PushReport",
    "annotator_project_name",
    "assign",
    "attribute_label_names",
    "decode_triples",
    "encode_spans",
    "example_links",
    "pull",
    "pull_problems",
    "push",
    "read_preannotations",
    "status",
    "write_pull",
]
