"""`deid --project-dir` killed between storing its review items and its notes: the notes wait for the officer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from clinical_nlp.project import init_project
from clinical_nlp.services.privacy import open_items, ready_to_push
from clinical_nlp.store import Store


def test_killed_after_the_queue_the_notes_are_held_and_a_rerun_completes(tmp_path, shared_corpora):
    lines = (shared_corpora / "mtsamples" / "notes.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    raw = tmp_path / "notes.jsonl"
    raw.write_text("".join(json.dumps({"id": json.loads(x)["id"], "text": json.loads(x)["text"][:1500]}) + "\n"
                           for x in lines), encoding="utf-8")  # fmt: skip
    project = init_project(tmp_path / "proj")
    cmd = [sys.executable, "-m", "clinical_nlp", "deid", "-i", str(raw), "-o", str(tmp_path / "out.jsonl"),
           "--phi-output", str(tmp_path / "phi.jsonl"), "--project-dir", str(project.root), "--key", "k"]  # fmt: skip
    env = {**os.environ, "CLINICAL_NLP_CRASH_AT": "deid.queued"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = Store(project.store_url)
    queued = open_items(store)
    assert queued and store.notes() == []  # the items are stored, no note is: nothing can be pushed
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted((i["note_id"], i["start"], i["end"]) for i in open_items(store)) == sorted(
        (i["note_id"], i["start"], i["end"]) for i in queued
    )  # replaced, not doubled
    ready, held = ready_to_push(store, store.notes())
    assert len(ready) + held["awaiting the privacy officer"] == 6 and "no de-identification record" not in held
