"""Named crash points for fault-injection tests (a no-op unless ``CLINICAL_NLP_CRASH_AT`` names one).

``CLINICAL_NLP_CRASH_AT=push.linked:2`` kills the process with SIGKILL the second time the push
reaches ``push.linked``, as a power cut or an OOM kill would: no ``finally``, no flush. The tests
in ``tests/integration/test_faults.py`` kill push, pull, round finish and export at every point
below, let an annotator edit in Doccano, re-run, and check that nothing was lost or duplicated.

Points (each push point is reached once per annotator): ``push.upload_accepted`` (the server
started the import, its task id not stored yet), ``push.import_started`` (the import
task recorded, running on the server), ``push.imported`` (finished, nothing linked),
``push.pre_saved`` (pre-annotation rows stored, links not), ``push.linked``, ``pull.saved``
(after each annotator's rows are stored, before the audit entry), ``round.pulled``, ``round.consensus``,
``export.written`` (files written, folder not renamed), ``export.renamed`` (not audited yet),
``adjudication.import_started`` (the expert's import recorded, running on the server) and
``deid.queued`` (``deid --project-dir``: the privacy-review items stored, the notes not yet).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "CLINICAL_NLP_CRASH_AT"
_seen: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process here when ``$CLINICAL_NLP_CRASH_AT`` is ``name`` or ``name:N`` (the N-th time)."""
    target = os.environ.get(ENV)
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    with _lock:
        _seen[name] += 1
        hit = _seen[name] >= int(nth or 1)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
