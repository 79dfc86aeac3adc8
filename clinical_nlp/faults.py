"""Named crash points for fault-injection tests (a no-op unless ``CLINICAL_NLP_CRASH_AT`` names one).

``CLINICAL_NLP_CRASH_AT=push.placed:3`` kills the process with SIGKILL the third time the push
reaches ``push.placed``, as a power cut or an OOM kill would: no ``finally``, no flush. The tests
in ``tests/integration/test_faults.py`` kill push, pull, round finish and export at every point
below, let an annotator edit in Doccano, re-run, and check that nothing was lost or duplicated.

Points: ``push.imported`` (texts on the server, links not saved), ``push.linked``,
``push.placed`` (after each (note, annotator) placement), ``push.flushed`` (after each store
flush), ``pull.saved`` (after each row stored), ``round.pulled``, ``round.consensus``,
``export.written`` (files written, folder not renamed) and ``export.renamed`` (not audited yet).
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
