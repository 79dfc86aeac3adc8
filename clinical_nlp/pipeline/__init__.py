"""The pre-annotation pipeline: a spaCy ``Language`` built from ``guidelines/``.

Components, in order (default, ``context="cascade"``): a rule sentence
splitter for clinical text (``clinical_nlp_sentences_v1``: sentence-final
punctuation, blank lines, ``Header:`` lines), entity rules
(``guidelines/entity_rules.jsonl`` via medspaCy's TargetMatcher), medspaCy's
sectionizer, temporal expressions (``clinical_nlp_temporal_v1``) and the
assertion cascade (``clinical_nlp_assertion_v1``: cue rules from
``guidelines/context_rules.json`` + linear model, see
:mod:`clinical_nlp.pipeline.assertion`). ``context="medspacy"`` restores the
earlier layout: medspaCy PyRuSH sentences and medspaCy ConText with our rule set
(about 10x slower, PyRuSH dominates; with ``rules_only=True`` ConText decides
the attributes). A learned NER model (``clinical_nlp.models.entities``) is
merged in :func:`preannotate` when given.

Example:
    >>> nlp = build_pipeline(rules_only=True)                        # doctest: +SKIP
    >>> doc = next(preannotate([Note("n1", "No pneumonia.")], nlp))   # doctest: +SKIP
    >>> doc.spans[0].negation                                        # doctest: +SKIP
    'negated'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clinical_nlp.config import default_guidelines_dir
from clinical_nlp.errors import ConfigError, InputFormatError
from clinical_nlp.hashing import file_sha256
from clinical_nlp.pipeline.temporal import is_present_cue
from clinical_nlp.types import AnnotatedNote, Note, Span

if TYPE_CHECKING:  # pragma: no cover
    import spacy

__all__ = ["PIPELINE_VERSION", "build_pipeline", "pipeline_version", "preannotate"]

PIPELINE_VERSION = "0.2.0"  # 0.2: rule sentence splitter, ConText replaced by the cue cascade
CONTEXT_MODES = ("cascade", "medspacy")
_SECTION_TEMPORALITY = {
    "past_medical_history": "historical",
    "past_surgical_history": "historical",
    "history_of_present_illness": None,
}
_SECTION_EXPERIENCER = {"family_history": "family"}


def _silence_pyrush() -> None:
    import warnings

    # medspaCy's sectionizer keeps an empty token-pattern matcher: spaCy warns on every doc
    warnings.filterwarnings("ignore", message=r"\[W036\]", category=UserWarning)
    try:
        from loguru import logger

        logger.disable("PyRuSH")
    except ImportError:  # pragma: no cover
        pass


def _file_hash(path: Path) -> str:
    try:
        return file_sha256(path)[:12]
    except FileNotFoundError:
        raise ConfigError(f"{path}: guideline rule file not found") from None


def _register_factories() -> None:
    from spacy.language import Language

    if "clinical_nlp_temporal_v1" in Language.factories:
        return

    @Language.factory("clinical_nlp_sentences_v1")
    def _make_sentences(nlp, name):
        return sentence_splitter

    @Language.factory("clinical_nlp_target_ents_v1")
    def _make_target_ents(nlp, name):
        from clinical_nlp.pipeline.entity_rules import target_spans_to_ents

        return target_spans_to_ents

    @Language.factory("clinical_nlp_temporal_v1")
    def _make_temporal(nlp, name):
        from clinical_nlp.pipeline.temporal import find_temporal

        def temporal(doc):
            doc._.cn_temporals = find_temporal(doc.text, doc._.cn_reference_date)
            return doc

        return temporal

    @Language.factory("clinical_nlp_assertion_v1", default_config={"model": None, "rules_only": False, "rules": None})
    def _make_assertion(nlp, name, model, rules_only, rules):
        return AssertionComponent(
            model=model, rules_only=rules_only, rules=rules, use_context="medspacy_context" in nlp.pipe_names
        )


def sentence_splitter(doc):
    """Mark sentence starts with the assertion module's clinical sentence-break regex.

    A break follows ``.``/``!``/``?``/``;`` before an upper-case letter or digit, a
    blank line, or a line break before a ``Section Header:``. Whitespace tokens
    (spaCy keeps line breaks as tokens) never start a sentence; the first token
    after a break does.
    """
    import numpy as np
    from spacy.attrs import SENT_START

    from clinical_nlp.pipeline.assertion import _SENT_BREAK

    if not len(doc):
        return doc
    breaks = {m.end() for m in _SENT_BREAK.finditer(doc.text)}
    starts = np.full(len(doc), -1, dtype=np.int64)  # SENT_START: 1 starts a sentence, -1 does not
    pending = False
    for i, tok in enumerate(doc):
        pending = pending or tok.idx in breaks
        if i == 0 or (pending and not tok.is_space):
            starts[i], pending = 1, False
    doc.from_array([SENT_START], starts.astype(np.uint64).reshape(-1, 1))  # one call, not one per token
    return doc


class AssertionComponent:
    """Sets ``cn_negation``/``cn_temporality``/``cn_experiencer``/``cn_score``/``cn_source`` on ``doc.ents``.

    Rules-only mode takes the cue rules' decisions (medspaCy ConText's when the
    pipeline has ``medspacy_context``); the default mode uses the linear
    assertion model, with section titles (Family History, Past Medical History)
    passing through as rule decisions.
    """

    def __init__(
        self, model: str | None = None, rules_only: bool = False, use_context: bool = False, rules: str | None = None
    ):
        from clinical_nlp.pipeline import assertion as A

        self.use_context = use_context
        self.rules, self.rules_id = A.load_cue_rules(rules)
        self.model = None
        if not rules_only:
            if model:
                self.model = A.load_model(model)
            elif A.default_model_available():
                self.model = A.load_model(None)
        self._A = A

    def __call__(self, doc):
        ents = doc.ents
        if not ents:
            return doc
        text = doc.text
        has_section = ents[0].has_extension("section_category")
        for ent in ents:
            section = ent._.section_category if has_section else None
            if self.model is None and self.use_context:
                mods = list(getattr(ent._, "modifiers", ()) or ())
                ids = sorted({str((m.rule.metadata or {}).get("id", m.rule.literal)) for m in mods})
                neg = "negated" if ent._.is_negated else ("possible" if ent._.is_uncertain else "affirmed")
                temp = "hypothetical" if ent._.is_hypothetical else ("historical" if ent._.is_historical else "recent")
                exp = "family" if ent._.is_family else "patient"
                score = 0.9 if ids else 0.8
                source = f"rules:context@{self.rules_id}" + (f"[{','.join(ids)}]" if ids else "")
                scores = {"negation": score, "temporality": score, "experiencer": score}
            else:
                res = self._A.classify_one(
                    text, ent.start_char, ent.end_char, model=self.model, rules=self.rules, rules_id=self.rules_id
                )
                neg, temp, exp = res["negation"], res["temporality"], res["experiencer"]
                scores, score, source = res["scores"], res["score"], res["source"]
            if section in _SECTION_EXPERIENCER:
                exp = _SECTION_EXPERIENCER[section]
                source += f"+section:{section}"
            if _SECTION_TEMPORALITY.get(section) and temp == "recent":
                temp = _SECTION_TEMPORALITY[section]
                source += f"+section:{section}"
            ent._.cn_negation, ent._.cn_temporality, ent._.cn_experiencer = neg, temp, exp
            ent._.cn_score, ent._.cn_scores, ent._.cn_source = score, scores, source
        return doc


def build_pipeline(
    *,
    entity_model: Path | None = None,
    assertion_model: Path | None = None,
    rules_only: bool = False,
    guidelines_dir: Path | None = None,
    context: str = "cascade",
    use_default_model: bool = False,
) -> spacy.Language:
    """Build the pre-annotation ``Language`` from the rule files in ``guidelines_dir``.

    ``assertion_model``: a model dir/JSON from ``scripts/train_assertion_model.py``
    (default: the one shipped in the package). ``rules_only``: ConText rules
    decide the attributes. ``entity_model``: a learned NER model directory,
    merged by :func:`preannotate` (its spans win over rule spans).
    ``context``: ``"cascade"`` (default; our rule sentence splitter, assertion
    cue rules + model) or ``"medspacy"`` (PyRuSH sentences + medspaCy ConText,
    the pre-0.2 layout; slower). ``scripts/bench_assertions.py`` compares them.
    ``use_default_model``: with no ``entity_model``, use the entity model shipped in the package
    (``make model``; rules only when it is not built).
    """
    if entity_model is None and use_default_model:
        from clinical_nlp.models.default_entities import default_entity_model_dir

        entity_model = default_entity_model_dir()
    if context not in CONTEXT_MODES:
        raise ConfigError(f"context={context!r}: expected one of {', '.join(CONTEXT_MODES)}")
    import spacy

    _silence_pyrush()
    import medspacy
    import medspacy.context
    import medspacy.section_detection
    import medspacy.sentence_splitting
    import medspacy.target_matcher  # noqa: F401

    from clinical_nlp.pipeline import extensions  # noqa: F401  (declares the extensions)

    _register_factories()
    gdir = Path(guidelines_dir) if guidelines_dir else default_guidelines_dir()
    context_rules = gdir / "context_rules.json"
    entity_rules = gdir / "entity_rules.jsonl"
    sections = gdir / "section_context.yaml"
    rule_files = [context_rules, entity_rules] + ([sections] if sections.exists() else [])
    nlp = spacy.blank("en")
    nlp.add_pipe("medspacy_pyrush" if context == "medspacy" else "clinical_nlp_sentences_v1")
    # matches go to a span group, then into doc.ents in one assignment (see target_spans_to_ents)
    from clinical_nlp.pipeline.entity_rules import TARGET_SPAN_GROUP, load_entity_rules

    matcher: Any = nlp.add_pipe(
        "medspacy_target_matcher", config={"result_type": "group", "span_group_name": TARGET_SPAN_GROUP}
    )
    nlp.add_pipe("clinical_nlp_target_ents_v1")

    matcher.add(load_entity_rules(entity_rules))
    nlp.add_pipe("medspacy_sectionizer", config={"rules": "default"})
    if context == "medspacy":
        try:
            nlp.add_pipe("medspacy_context", config={"rules": str(context_rules)})
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise ConfigError(f"{context_rules}: cannot load ConText rules ({exc})") from None
    nlp.add_pipe("clinical_nlp_temporal_v1")
    nlp.add_pipe(
        "clinical_nlp_assertion_v1",
        config={
            "model": str(assertion_model) if assertion_model else None,
            "rules_only": rules_only,
            "rules": str(context_rules),
        },
    )
    comp: Any = nlp.get_pipe("clinical_nlp_assertion_v1")
    assert_id = "rules" if comp.model is None else comp.model.name
    nlp.meta["clinical_nlp"] = {
        "version": PIPELINE_VERSION,
        "rules": ".".join(_file_hash(p) for p in rule_files),
        "section_context": load_section_context(sections),
        "assertion": assert_id,
        "entity_model": str(entity_model) if entity_model else None,
        "rules_only": rules_only,
        "context": context,
    }
    if entity_model:  # loaded now (as medspacy.load() loads its pipeline), not in each preannotate call
        from clinical_nlp.models.registry import cached_entity_model

        cached_entity_model(entity_model)
    return nlp


def load_section_context(path: Path) -> dict[str, dict[str, str]]:
    """``{section category: {attribute: value}}`` (``guidelines/section_context.yaml``; empty if absent)."""
    if not path.exists():
        return {}
    import yaml

    from clinical_nlp.types import ATTRIBUTE_VALUES

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of section categories")
    for section, attrs in data.items():
        for attr, value in (attrs or {}).items():
            if attr not in ATTRIBUTE_VALUES or value not in ATTRIBUTE_VALUES[attr]:
                raise ConfigError(f"{path}: {section}: {attr}={value!r} is not an attribute value")
    return {str(k): dict(v or {}) for k, v in data.items()}


def _in_section(attrs: dict[str, str], section: str | None, context: dict[str, dict[str, str]]) -> dict[str, str]:
    """The attributes with the section's implied values where they are at their default (no cue said else)."""
    from clinical_nlp.types import ATTRIBUTE_DEFAULTS

    implied = context.get(section or "", {})
    return {
        **attrs,
        **{a: v for a, v in implied.items() if attrs.get(a, ATTRIBUTE_DEFAULTS[a]) == ATTRIBUTE_DEFAULTS[a]},
    }


def pipeline_version(nlp: spacy.Language) -> str:
    """Provenance string, e.g. ``clinical-nlp-pipeline@0.1.0+rules:<hash>+assert:<name>``."""
    meta = nlp.meta.get("clinical_nlp")
    if not meta:
        raise ConfigError("this spaCy pipeline was not built by clinical_nlp.pipeline.build_pipeline")
    out = f"clinical-nlp-pipeline@{meta['version']}+rules:{meta['rules']}+assert:{meta['assertion']}"
    if meta.get("context", "medspacy") != "cascade":
        out += "+context:medspacy"
    if meta.get("entity_model"):
        out += "+ner:" + _entity_model_id(Path(meta["entity_model"]))
    return out


def _entity_model_id(path: Path) -> str:
    """The entity model's recorded version (``model.json``), else a hash of its path."""
    try:
        version = json.loads((path / "model.json").read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        version = None
    return str(version) if version else hashlib.sha256(str(path).encode()).hexdigest()[:8]


def _section_of(doc, start: int, end: int) -> str | None:
    span = doc.char_span(start, end, alignment_mode="expand")
    return None if span is None else getattr(span._, "section_category", None)


def _doc_spans(doc, note: Note, version: str, context: dict[str, dict[str, str]]) -> list[Span]:
    spans = []
    for ent in doc.ents:
        rule_id = None
        try:
            rule_id = (ent._.target_rule.metadata or {}).get("id")
        except AttributeError:
            pass
        spans.append(
            Span(
                ent.start_char,
                ent.end_char,
                ent.label_,
                ent.text,
                _in_section(
                    {
                        "negation": ent._.cn_negation,
                        "temporality": ent._.cn_temporality,
                        "experiencer": ent._.cn_experiencer,
                    },
                    ent._.section_category,
                    context,
                ),
                score=ent._.cn_score,
                source=f"{version}|entity:rule:{rule_id}|assert:{ent._.cn_source}",
            )
        )
    for t in doc._.cn_temporals or ():
        if is_present_cue(t):  # found (doc._.cn_temporals), not suggested: see is_present_cue
            continue
        attrs = {"type": t.type, "value": t.value, "relation": t.relation}
        if t.mod:
            attrs["mod"] = t.mod
        if t.anchor:
            attrs["anchor"] = t.anchor
        spans.append(Span(t.start, t.end, "Temporal", t.text, attrs, score=0.8, source=f"{version}|temporal:rules"))
    return spans


def preannotate(
    notes: Iterable[Note],
    nlp: spacy.Language | None = None,
    *,
    batch_size: int = 32,
    progress: bool = False,
    model_min_scores: Mapping[str, float] | None = None,
) -> Iterator[AnnotatedNote]:
    """Pre-annotate notes: entity spans with attributes, score and source, plus Temporal spans.

    The note's ``date`` metadata is the reference date for temporal
    normalisation. A note whose text is empty (an empty criteria section is a real note) gets no
    spans; one that is not a string or is too long is an :class:`InputFormatError` naming it.
    Spans inside section headers (``MEDICATIONS:``, ``# Allergies``) are never suggested
    (:mod:`clinical_nlp.pipeline.structure`). With an entity model, its spans win over the rule
    spans they overlap, but only those scored at least their label's ``min_score``
    (``model_min_scores``, default the label schema's): where the model is unsure, the rule spans stay.
    A span keeps only the assertion attributes its label's schema entry lists (``schema_attributes.py``).
    """
    from clinical_nlp.models.registry import cached_entity_model
    from clinical_nlp.pipeline import assertion as A
    from clinical_nlp.pipeline.schema_attributes import restrict_attributes, schema_attributes
    from clinical_nlp.pipeline.spaces import original_text, working_note
    from clinical_nlp.pipeline.structure import IntervalIndex, header_ranges

    nlp = nlp or build_pipeline()
    version = pipeline_version(nlp)
    meta = nlp.meta["clinical_nlp"]
    entity_model = cached_entity_model(Path(meta["entity_model"])) if meta.get("entity_model") else None
    comp: Any = nlp.get_pipe("clinical_nlp_assertion_v1")
    context = meta.get("section_context") or {}
    if model_min_scores is None and entity_model is not None:
        from clinical_nlp.config import load_label_schema

        model_min_scores = {lab.name: lab.min_score for lab in load_label_schema().labels}
    bars = dict(model_min_scores or {})
    allowed = schema_attributes()  # a Value or a Negation cue carries no negation / temporality / experiencer
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="pre-annotating", unit="note")

    def batches() -> Iterator[list[Note]]:
        batch: list[Note] = []
        for note in notes:
            if not isinstance(note.text, str):
                raise InputFormatError(f"note {note.id!r}: text is not a string")
            if len(note.text) > A.MAX_TEXT_CHARS:
                raise InputFormatError(
                    f"note {note.id!r}: text of {len(note.text):,} characters exceeds {A.MAX_TEXT_CHARS:,}"
                )
            batch.append(note)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    try:
        for whole in batches():
            pairs = [(n, working_note(n)) for n in whole if n.text.strip()]  # empty notes: no spans
            batch = [w for _, w in pairs]  # zero-width and no-break spaces read as spaces (pipeline/spaces.py)
            docs = []
            for note in batch:
                d = nlp.make_doc(note.text)
                d._.cn_reference_date = note.date
                docs.append(d)
            model_spans: Sequence[tuple[Span, ...]] = (
                entity_model.predict(batch) if entity_model is not None and batch else [()] * len(batch)
            )
            done: dict[int, AnnotatedNote] = {}
            for (given, note), doc, extra in zip(
                pairs, nlp.pipe(docs, batch_size=batch_size), model_spans, strict=True
            ):
                spans = _doc_spans(doc, note, version, context)
                if extra:
                    merged = []
                    for s in extra:
                        if s.label == "Temporal" or (s.score is not None and s.score < bars.get(s.label, 0.0)):
                            continue
                        res = A.classify_one(
                            note.text, s.start, s.end, model=comp.model, rules=comp.rules, rules_id=comp.rules_id
                        )
                        merged.append(
                            Span(
                                s.start,
                                s.end,
                                s.label,
                                s.text or note.text[s.start : s.end],
                                _in_section(
                                    {**dict(s.attributes), **{k: res[k] for k in A.ATTRIBUTES}},
                                    _section_of(doc, s.start, s.end),
                                    context,
                                ),
                                score=s.score if s.score is not None else res["score"],
                                source=f"{version}|entity:{s.source or 'model'}|assert:{res['source']}",
                            )
                        )
                    taken = IntervalIndex((m.start, m.end) for m in merged)
                    spans = merged + [r for r in spans if r.label == "Temporal" or not taken.overlaps(r.start, r.end)]
                headers = IntervalIndex(header_ranges(note.text))
                spans = [restrict_attributes(s, allowed) for s in spans if not headers.contains(s.start, s.end)]
                spans.sort(key=lambda s: (s.start, s.end, s.label))
                done[id(given)] = AnnotatedNote(given, tuple(original_text(spans, given.text)))
            for note in whole:
                yield done.get(id(note)) or AnnotatedNote(note, ())
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
