"""The main job on the bundled samples: three active-learning rounds over a real Doccano.

Two simulated annotators (different skills) correct their own pre-annotations
through Doccano's REST API as themselves; an expert oracle adjudicates what
the consensus step queues; the fast entity model is retrained each round.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import load_label_schema, repo_root
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.project import init_project
from clinical_nlp.rounds import RoundError, RoundSettings, finish_round, rounds, start_round
from clinical_nlp.simulate import AnnotatorSkill, SimulatedAnnotator
from clinical_nlp.store import Store
from clinical_nlp.types import AnnotatedNote, Note, Span

#: the labels the demo annotates and trains: the schema's pre-annotated labels
SCHEMA_LABELS = load_label_schema().model_labels


def doccano_ready_gold(docs: Sequence[AnnotatedNote], labels: Sequence[str] = SCHEMA_LABELS) -> list[AnnotatedNote]:
    """Chia gold restricted to schema labels; discontinuous spans become their outer range
    (the guideline's Doccano convention); duplicates dropped."""
    keep = set(labels)
    out = []
    for d in docs:
        seen, spans = set(), []
        for s in d.spans:
            if s.label not in keep:
                continue
            key = (s.start, s.end, s.label)
            if key in seen:
                continue
            seen.add(key)
            spans.append(Span(s.start, s.end, s.label, d.text[s.start : s.end], dict(s.attributes)))
        out.append(AnnotatedNote(d.note, tuple(spans)))
    return out


def register_demo_team(store: Store, annotators: Sequence[str], expert: str, guideline_version: str) -> None:
    """Register the simulated annotators and the expert with the qualifications the label schema requires
    (guideline training on this version; the expert with a clinical licence, so Drug may be assigned)."""
    from clinical_nlp.annotators import Annotator, Registry

    registry = Registry(store)
    for name in annotators:
        registry.add(
            Annotator(name, "annotator", license_id=f"DEMO-RN-{name}", guideline_version=guideline_version),
            actor="demo",
            replace=True,
        )
    registry.add(
        Annotator(expert, "expert", license_id="DEMO-MD-1", guideline_version=guideline_version),
        actor="demo",
        replace=True,
    )


def act_in_doccano(session, example_id: int, text: str, final: Sequence[Span], *, comment: str | None = None) -> int:
    """Turn this user's current spans on an example into ``final`` (delete / add), comment (optional), then
    mark it done.

    Returns the number of REST edits made.
    """
    from clinical_nlp.doccano import encode_spans
    from clinical_nlp.doccano.offsets import to_doccano
    from clinical_nlp.io.attribute_labels import parse_attribute_label

    def is_attribute(label: str) -> bool:
        return parse_attribute_label(label) is not None

    names = session.label_names()
    current = {(s["start_offset"], s["end_offset"], names.get(s["label"])): s["id"] for s in session.spans(example_id)}
    wanted = set(to_doccano(text, encode_spans(final)))  # the REST API counts as the UI: UTF-16 units
    edits = 0
    for key, span_id in current.items():
        if key not in wanted:
            session.delete_span(example_id, span_id)
            edits += 1
    # entity spans before their attribute labels
    for start, end, label in sorted(wanted - set(current), key=lambda t: (is_attribute(t[2]), t[0], t[1])):
        session.add_span(example_id, start, end, label)
        edits += 1
    if comment:
        session.add_comment(example_id, comment)
    session.mark_done(example_id)
    return edits


def simulate_annotators(
    project,
    store: Store,
    number: int,
    annotators: Mapping[str, SimulatedAnnotator],
    gold: Mapping[str, AnnotatedNote],
    labels: Sequence[str],
    logins: Mapping[str, str],
) -> dict[str, int]:
    """Each simulated annotator corrects her examples in her own Doccano project, logged in as herself.

    ``logins`` are the simulated people's own passwords (what each types into her browser);
    the engine never sees them.
    """
    from clinical_nlp.doccano import AnnotatorSession, DoccanoCredentials, example_links

    creds = DoccanoCredentials.from_env()
    info = next(r for r in rounds(store) if r["number"] == number)
    links = example_links(store, info["settings"]["doccano_project"])
    done: dict[str, int] = {}
    for name, sim in annotators.items():
        pid = int(info["doccano_project_ids"][name])
        session = AnnotatorSession(creds.url, name, logins[name], pid)
        for nid in info["assignments"].get(name, []):
            example = links[(name, nid)].example_id
            note = store.get_note(nid)
            pre = session.read(example, note.text)
            final = sim.annotate(gold[nid], pre, labels=list(labels))
            final = tuple(s for s in final if s.fragments is None)
            act_in_doccano(session, example, note.text, final)
            done[name] = done.get(name, 0) + 1
    return done


def simulate_expert_in_doccano(
    store: Store,
    project_name: str,
    task: str,
    expert: str,
    login: str,
    decide: Callable[[Note], tuple[Sequence[Span], str]],
) -> int:
    """The simulated expert works through her Doccano task project (``task``: adjudication or qa), logged in
    as herself: on each example not yet done she turns the suggestions into her spans, comments why and
    marks it done (the REST calls her browser makes). Returns how many examples she finished."""
    from clinical_nlp.doccano import AnnotatorSession, DoccanoCredentials, DoccanoServer
    from clinical_nlp.doccano.tasks import TaskProject

    creds = DoccanoCredentials.from_env()
    found = DoccanoServer(creds).find_project(TaskProject(project_name, task, expert).name)
    if found is None:
        return 0
    session = AnnotatorSession(creds.url, expert, login, int(found["id"]))
    n = 0
    for ex in session.examples(confirmed=False):
        note = store.get_note(str(ex["meta"]["note_id"]))
        spans, reason = decide(note)
        act_in_doccano(session, int(ex["id"]), note.text, [s for s in spans if s.fragments is None], comment=reason)
        n += 1
    return n


def review_qa_in_doccano(store: Store, project, doccano_project: str, login: str, oracle: Callable):
    """Every review the QA policy requires goes to the expert's Doccano QA project; she confirms or corrects."""
    from clinical_nlp.doccano.qa_review import pull_qa_review, push_qa_review

    guideline = project.guideline()
    push_qa_review(store, guideline, doccano_project, "expert")
    simulate_expert_in_doccano(store, doccano_project, "qa", "expert", login, oracle)
    return pull_qa_review(store, guideline, doccano_project, "expert")


#: what the people of a real team click, printed at the end of the demo (the demo's simulated people
#: make exactly these REST calls)
CLICKS = """
What a real team does in Doccano (the demo's simulated people made the same calls):
  annotators  log in, open their project <project>--<name>, 'Start Annotation'; per note: right-click a
              wrong suggestion to delete it, select text and pick a label to add one, put NEG/POSS/HIST/
              HYPO/FAM/OTHER on the same text for attributes, press Enter (done)
  expert      after 'round finish' names her adjudication project <project>--adjudication--expert: per
              note read who proposed what in the metadata panel, delete the wrong suggestions, add what
              is missing, comment why, press Enter; then 'round finish' again
  reviewer    after 'qa push --reviewer NAME': per note check the labels named under 'review', correct
              if needed, comment, press Enter; then 'qa pull --reviewer NAME'
"""


def create_demo_accounts(logins: Mapping[str, str]) -> None:
    """The simulated people create their own Doccano accounts (as a person would on the admin page)."""
    from clinical_nlp.doccano import DoccanoCredentials, DoccanoServer

    server = DoccanoServer(DoccanoCredentials.from_env())
    for name in server.missing_users(list(logins)):
        server.create_user(name, logins[name])


def run_demo(
    workdir: Path | str = "demo_project",
    *,
    rounds_n: int = 3,
    batch: int = 10,
    seed: int = 0,
    progress: bool = True,
    corpus_dir: Path | str | None = None,
    epochs: int = 20,
) -> dict[str, object]:
    """Create a fresh demo project and run ``rounds_n`` rounds; returns paths and headline numbers.

    ``corpus_dir`` holds ``train.jsonl`` (the pool) and ``dev.jsonl`` in Chia's form
    (default: the bundled sample ``corpora/chia``)."""
    import shutil

    root = Path(workdir).resolve()
    if root.exists():
        shutil.rmtree(root)
    project = init_project(root, name="demo")
    store = Store(project.store_url)
    corpora = Path(corpus_dir) if corpus_dir is not None else repo_root() / "corpora" / "chia"
    # empty criteria lists (the full Chia split has one) cannot be annotated: skipped
    pool = doccano_ready_gold([d for d in read_jsonl(corpora / "train.jsonl", allow_empty=True) if d.text.strip()])
    dev = doccano_ready_gold([d for d in read_jsonl(corpora / "dev.jsonl", allow_empty=True) if d.text.strip()])
    gold = {d.id: d for d in pool}
    # Chia criteria are public ClinicalTrials.gov text without PHI: attested, and audited as such.
    attested = "source-attested: public ClinicalTrials.gov eligibility criteria, no PHI"
    store.add_notes(
        [Note(d.id, d.text, {"patient": d.note.metadata.get("trial")}) for d in pool],
        deidentified=True,
        method=attested,
        actor="demo",
    )
    AuditLog(store).append(
        "deidentify",
        actor="demo",
        details={
            "notes": len(pool),
            "method": "source-attested: public ClinicalTrials.gov eligibility criteria, no PHI",
        },
    )

    names = ("annotator1", "annotator2")
    register_demo_team(store, names, "expert", project.guideline().version)
    # the simulated people's own logins (their browsers'), never given to the engine
    logins = {n: f"Demo-{i}-Xq7pw!{seed}" for i, n in enumerate((*names, "expert"))}
    create_demo_accounts(logins)
    annotators = {
        "annotator1": SimulatedAnnotator("annotator1", AnnotatorSkill(boundary_error=0.05, miss_rate=0.05), seed),
        "annotator2": SimulatedAnnotator(
            "annotator2", AnnotatorSkill(boundary_error=0.1, miss_rate=0.1, negation_flip=0.1, wrong_label=0.05), seed
        ),
    }
    settings = RoundSettings(
        strategy="entropy",
        batch=batch,
        annotators=names,
        overlap=2,
        expert="expert",
        doccano_project=f"demo-{int(time.time())}",
        seed=seed,
        epochs=epochs,
    )

    def in_doccano(note: Note, by_annotator, reasons):
        return None  # the expert decides in her Doccano adjudication project

    def oracle(note: Note) -> tuple[Sequence[Span], str]:
        return gold[note.id].spans, "expert oracle: the corpus gold of this note"

    timings = []
    for _ in range(rounds_n):
        t0 = time.perf_counter()
        info = start_round(project, settings, actor="demo")
        simulate_annotators(project, store, info["number"], annotators, gold, SCHEMA_LABELS, logins)
        try:
            info = finish_round(project, expert_decision=in_doccano, dev=dev, actor="demo", progress=False)
        except RoundError as waiting:  # what a real round prints; the expert then works in Doccano
            print(f"  {waiting}", flush=True)
            simulate_expert_in_doccano(store, settings.doccano_project, "adjudication", "expert", logins["expert"],
                                       oracle)  # fmt: skip
            info = finish_round(project, expert_decision=in_doccano, dev=dev, actor="demo", progress=False)
        timings.append(time.perf_counter() - t0)
        f1 = ((info.get("metrics") or {}).get("strict") or {}).get("micro", {}).get("f1")
        agreement = (info.get("agreement") or {}).get("overall", {})
        print(
            f"round {info['number']}: {len(info['batch'])} notes, strategy {info['strategy']}, "
            f"edits/note {info.get('edits_per_note', 0):.1f}, annotator span F1 "
            f"{agreement.get('span_f1_exact', float('nan')):.3f}, adjudicated {info.get('adjudicated')}, "
            f"dev strict F1 {f1 if f1 is None else round(f1, 3)}, {timings[-1]:.0f} s",
            flush=True,
        )
    qa = review_qa_in_doccano(store, project, settings.doccano_project, logins["expert"], oracle)
    print(f"QA review in Doccano: {len(qa.confirmed)} confirmed, {len(qa.corrected)} corrected, "
          f"{qa.still_open} open", flush=True)  # fmt: skip
    print(CLICKS, flush=True)
    last = rounds(store)[-1]
    AuditLog(store).verify()
    AuditLog(store).verify_rows()  # every annotation row matches its audited hash
    from clinical_nlp.dataset_report import build_report

    html, _json = build_report(root, root / "reports" / "dataset")
    summary = {
        "project": str(root),
        "report": last["report"],
        "dataset_report": str(html),
        "plot": str(Path(last["report"]).with_name("learning_curve.png")),
        "round_seconds": [round(t, 1) for t in timings],
    }
    (root / "demo_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


_ = np
