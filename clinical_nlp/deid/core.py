"""Detect PHI (rules + learned tagger), replace it with consistent surrogates, map offsets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from clinical_nlp.deid.context import NOT_NAMES as _NOT_NAMES
from clinical_nlp.deid.context import find_context_names, place_runs
from clinical_nlp.deid.gazetteer import warm as warm_lexicons
from clinical_nlp.deid.gazetteer import zipf
from clinical_nlp.deid.model import PHITagger, load_tagger, tokenize
from clinical_nlp.deid.review import flag_for_review
from clinical_nlp.deid.rules import find_rule_spans
from clinical_nlp.deid.shield import digit_names, shielded, unshielded_part
from clinical_nlp.deid.surrogates import NAME_LABELS, SurrogateMaker
from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.textnorm import plain_text

METHOD = (
    "clinical-nlp-deid-2 (regex + context rules, census/wordfreq lexicon features, hashed-feature CRF "
    "tagger trained on the PhysioNet deid shared half, patient-level name propagation)"
)

#: Label documentation (the corpus labels plus the ones only rules produce).
LABELS: dict[str, str] = {
    "PTName": "patient name (each token)",
    "PTNameInitial": "patient initials",
    "RelativeProxyName": "name of a relative or health-care proxy",
    "HCPName": "name of a clinician or other care provider",
    "Date": "date more specific than a year (shifted per patient)",
    "DateYear": "a year on its own (kept as gold label; not PHI under Safe Harbor unless with month/day)",
    "Age": "age over 89",
    "Phone": "phone, fax or pager number",
    "Location": "address, hospital, city or other location below state level",
    "Email": "e-mail address",
    "URL": "web address",
    "IP": "IP address",
    "ID": "medical record, account, licence, device, social security or other identifier",
    "Other": "other unique identifying number or code",
}


@dataclass(frozen=True, slots=True)
class PHISpan:
    start: int
    end: int
    label: str
    #: why a privacy officer must look at it (None: a confident detection)
    review: str | None = None

    def to_dict(self) -> dict:
        out = {"start": self.start, "end": self.end, "label": self.label}
        if self.review:
            out["review"] = self.review
        return out


@dataclass(frozen=True, slots=True)
class Replacement:
    """One replaced segment: original ``[orig_start, orig_end)`` became ``[deid_start, deid_end)``."""

    orig_start: int
    orig_end: int
    deid_start: int
    deid_end: int
    label: str


@dataclass
class DeidResult:
    id: str
    patient: str | None
    text: str
    spans: list[PHISpan]
    offset_map: list[Replacement]
    surrogates: dict[str, str] = field(default_factory=dict)


#: P(O) below which a word is tagged PHI outright; from there up to ``DEFAULT_REVIEW_BELOW`` a word
#: goes to the privacy review queue (redacted and flagged, unless it is a clinical word the queue's
#: filters rule out). Both chosen together by 5-fold patient-grouped CV on the development patients
#: (``bench_deid.py --part dev --threshold T --review-below Q``; RESULTS.md, thirteenth session).
DEFAULT_THRESHOLD = 0.9
DEFAULT_REVIEW_BELOW = 0.98


class Detector:
    """PHI detector. ``threshold``: a token is PHI when P(O) falls below it.

    Context rules (``context.py``) add names and places; a place is dropped when the
    tagger's P(O) for it is at least ``veto``. Names found with confidence (a context
    rule with P(O) < ``context_seed``, or P(O) < ``seed_threshold``) that are not common
    English words are propagated to their other occurrences in the same note, and with
    :meth:`detect_group` in every note of the group (``deidentify_rows`` groups the notes
    of one patient); ``propagate_veto`` < 1 would let the tagger veto those too. Bare
    capitalised name-like pairs are kept only where P(O) < ``pair_veto``.
    """

    def __init__(
        self,
        tagger: PHITagger | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        seed_threshold: float = 0.3,
        propagate: bool = True,
        veto: float = 0.9999,
        context_seed: float = 0.9,
        propagate_veto: float = 1.0,
        pair_veto: float = 0.9999,
        review_below: float | None = DEFAULT_REVIEW_BELOW,
    ):
        self.tagger = tagger or load_tagger()
        warm_lexicons()
        self.threshold = threshold
        self.seed_threshold = seed_threshold
        self.propagate = propagate
        self.veto = veto
        self.context_seed = context_seed
        self.propagate_veto = propagate_veto
        self.pair_veto = pair_veto
        self.review_below = review_below

    @property
    def method(self) -> str:
        """The method recorded with the notes (``deid_method``): ``METHOD``, plus the MiniLM if in the ensemble."""
        minilm = getattr(self.tagger, "transformer", None)
        if minilm is None:
            return METHOD
        strong, crf_below = getattr(self.tagger, "strong", None), getattr(self.tagger, "crf_below", 1.0)
        where = f"P(O) < {strong}" + (f" and the CRF's P(O) < {crf_below}" if crf_below < 1.0 else "")
        return f"{METHOD} + fine-tuned MiniLM PHI tagger {minilm.name} (PHI where it says so: {where})"

    def detect(self, text: str) -> list[PHISpan]:
        return self.detect_group([text])[0]

    def detect_group(self, texts: Sequence[str]) -> list[list[PHISpan]]:
        """Detect PHI in several notes of one patient, sharing confidently found names between them.
        Zero-width and no-break spaces, non-breaking hyphens read as plain ones (``textnorm``)."""
        texts = [plain_text(t) for t in texts]
        found = [self._marks(t) for t in texts]
        if self.propagate:
            seeds: dict[str, dict[str, int]] = {}
            for _, s, _, _ in found:
                for word, lab in s:
                    seeds.setdefault(word, {}).setdefault(lab, 0)
                    seeds[word][lab] += 1
            phrases = {
                ph for text, (marks, _, _, _) in zip(texts, found, strict=True) for ph in _place_phrases(text, marks)
            }
            for ph in sorted(phrases):  # multi-word places ("Sacred Heart") recur in the patient's notes
                pattern = re.compile(r"\b" + r"[\s-]+".join(re.escape(w) for w in ph) + r"\b", re.I)
                for text, (marks, _, _, _) in zip(texts, found, strict=True):
                    for m in pattern.finditer(text):
                        marks.append((m.start(), m.end(), "Location", 0))
            if seeds:
                best: dict[str, str] = {w: max(c.items(), key=lambda kv: kv[1])[0] for w, c in seeds.items()}
                for text, (marks, _, p_o, _) in zip(texts, found, strict=True):
                    for m in _WORD.finditer(text):
                        seed_label = best.get(m.group().lower())
                        if seed_label is not None and (
                            self.propagate_veto >= 1.0 or p_o.get(m.start(), 0.0) < self.propagate_veto
                        ):
                            marks.append((m.start(), m.end(), seed_label, 0))
        # the clinical-vocabulary shield has the last word: headers and clinical words are never PHI
        out = []
        for text, (marks, _, p_o, words) in zip(texts, found, strict=True):
            spans = []
            for sp in _resolve(marks):  # cut clinical words from a span's ends; dates and codes stay whole
                bounds = (sp.start, sp.end) if sp.label in _UNSHIELDED else unshielded_part(text, sp.start, sp.end)
                if bounds is not None:
                    spans.append(replace(sp, start=bounds[0], end=bounds[1]))
            if self.review_below is not None:  # the privacy review queue: flagged, redacted until reviewed
                spans = flag_for_review(text, spans, p_o, words, self.threshold, self.review_below)
            out.append(spans)
        return out

    def _marks(
        self, text: str
    ) -> tuple[list[tuple[int, int, str, int]], list[tuple[str, str]], dict[int, float], dict]:
        marks: list[tuple[int, int, str, int]] = []  # start, end, label, priority
        seeds: list[tuple[str, str]] = []
        for a, b, lab in find_rule_spans(text):
            marks.append((a, b, lab, 2))
        for a, b in digit_names(text):  # synthetic-name format ("Bob965"): a name whatever the tagger says
            marks.append((a, b, "PTName", 2))
        toks = tokenize(text)
        # dates, phones and numbers come from the rules: the tagger only looks at words
        words = [i for i, (a, b) in enumerate(toks) if text[a].isalpha()]
        p_o: dict[int, float] = {}
        words_at: dict[int, tuple[int, str]] = {}  # start -> (end, the tagger's most likely PHI label)
        tagger_label: dict[int, str] = {}
        if words:
            proba = self.tagger.proba(text, toks, words)
            labels = self.tagger.labels
            o = labels.index("O")
            others = proba.copy()
            others[:, o] = -1.0
            best_of = others.argmax(axis=1).tolist()  # most likely PHI label of each word
            for i, po, best in zip(words, proba[:, o].tolist(), best_of, strict=True):
                a, b = toks[i]
                p_o[a] = po
                words_at[a] = (b, labels[best])
                if po < 0.9999:
                    tagger_label[a] = labels[best]
                if po < self.threshold and labels[best] not in ("Date", "DateYear"):
                    marks.append((a, b, labels[best], 1))
                    # patient names are shared across the patient's notes more eagerly (recall first)
                    if po < (0.6 if labels[best] == "PTName" else self.seed_threshold):
                        _seed(seeds, text[a:b], labels[best])
        for m in _PT_INITIAL.finditer(text):
            marks.append((m.start(1), m.end(1), "PTNameInitial", 1))
        places: list[tuple[int, int]] = []
        for a, b, lab, strong in find_context_names(text):
            po = p_o.get(a, 0.0)
            if lab == "Location" and not strong:
                places.append((a, b))
                continue
            if lab == "Name?":  # a bare name-like pair: only with the tagger's agreement, labelled as it says
                if po < self.pair_veto:
                    marks.append((a, b, tagger_label.get(a) or "RelativeProxyName", 1))
                    if zipf(text[a:b].lower()) < 2.5:
                        _seed(seeds, text[a:b], tagger_label.get(a) or "RelativeProxyName")
                continue
            marks.append((a, b, lab, 1))
            if po < self.context_seed:
                _seed(seeds, text[a:b], lab)
        # the tagger may veto a rule-found place it is sure is not PHI ("to go to rehab"), but only
        # as a whole: "Bel Air" keeps "Air" when the tagger accepts "Bel"
        for run in place_runs(text, places):
            if min(p_o.get(a, 0.0) for a, _ in run) < self.veto:
                for a, b in run:
                    marks.append((a, b, "Location", 1))
                    if p_o.get(a, 0.0) < self.context_seed:
                        _seed(seeds, text[a:b], "Location")
        return marks, seeds, p_o, words_at


_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_GAP = re.compile(r"[\s-]+")


def _place_phrases(text: str, marks: list[tuple[int, int, str, int]]) -> list[tuple[str, ...]]:
    """Runs of two or more adjacent Location marks (a hospital or town name) as lower-cased words."""
    locs = sorted((a, b) for a, b, lab, _ in marks if lab == "Location")
    out: list[tuple[str, ...]] = []
    run: list[tuple[int, int]] = []
    for a, b in locs + [(len(text) + 2, len(text) + 2)]:
        if run and (a < run[-1][1] or _GAP.fullmatch(text[run[-1][1] : a])):
            if a >= run[-1][1]:
                run.append((a, b))
            continue
        words = [w.lower() for x, y in run for w in _WORD.findall(text[x:y])]
        if len(words) >= 2 and all(len(w) > 1 for w in words):
            out.append(tuple(words))
        run = [(a, b)]
    return out


#: labels the shield never drops (dates, numbers and identifiers are not vocabulary)
_UNSHIELDED = frozenset({"Date", "DateYear", "Phone", "Age", "ID", "Email", "URL", "IP"})

_PT_INITIAL = re.compile(r"\b(?:mr|mrs|ms|miss)\.?\s+([A-Z])\.(?=\s)", re.I)
_SEED_LABELS = NAME_LABELS | {"Location"}


def _seed(seeds: list[tuple[str, str]], surface: str, label: str) -> None:
    w = surface.lower()
    # a confidently found name (the patient's, a relative's, a clinician's) is propagated even when it is
    # a fairly common word (Smith, Brown, David: Zipf < 5.2; "will", "may", "young" stay out):
    # over-redacting "brown" in that patient's notes is the safer error. Relatives and clinicians had
    # 4.6 until the thirteenth session (development CV: 5.2 finds 2 more relative tokens, no false positive)
    limit = 3.5 if label == "Location" else 5.2
    if shielded(w):
        return
    if label in _SEED_LABELS and len(w) >= 3 and w.isalpha() and w not in _NOT_NAMES and zipf(w) < limit:
        seeds.append((w, "PTName" if label == "PTNameInitial" else label))


def _resolve(marks: list[tuple[int, int, str, int]]) -> list[PHISpan]:
    """Rules win over the tagger; overlapping spans of equal priority merge (longest label kept)."""
    marks.sort(key=lambda m: (m[0], -m[3], -(m[1] - m[0])))
    out: list[list] = []
    for a, b, lab, pr in marks:
        if out and a < out[-1][1]:
            last = out[-1]
            if pr > last[3]:
                last[0], last[1], last[2], last[3] = min(a, last[0]), max(b, last[1]), lab, pr
            else:
                last[1] = max(last[1], b)
            continue
        out.append([a, b, lab, pr])
    return [PHISpan(a, b, lab) for a, b, lab, _ in out]


# applying replacements and mapping offsets ----------------------------------------
def apply_replacements(
    text: str, spans: Sequence[PHISpan], patient: str, maker: SurrogateMaker
) -> tuple[str, list[Replacement], dict[str, str]]:
    pieces: list[str] = []
    mapping: list[Replacement] = []
    seen: dict[str, str] = {}
    cursor = 0
    out_len = 0
    for s in sorted(spans, key=lambda x: x.start):
        if s.start < cursor:
            raise OffsetMismatchError(f"overlapping PHI spans at {s.start}")
        pieces.append(text[cursor : s.start])
        out_len += s.start - cursor
        original = text[s.start : s.end]
        sur = maker.surrogate(patient, s.label, original)
        seen[original] = sur
        mapping.append(Replacement(s.start, s.end, out_len, out_len + len(sur), s.label))
        pieces.append(sur)
        out_len += len(sur)
        cursor = s.end
    pieces.append(text[cursor:])
    return "".join(pieces), mapping, seen


def _map(start: int, end: int, offset_map: Sequence[Replacement], to_original: bool) -> tuple[int, int]:
    if end < start:
        raise OffsetMismatchError(f"span [{start}, {end}) has end before start")

    def point(pos: int, is_end: bool) -> int:
        delta = 0
        for r in offset_map:
            src_a, src_b = (r.deid_start, r.deid_end) if to_original else (r.orig_start, r.orig_end)
            dst_a, dst_b = (r.orig_start, r.orig_end) if to_original else (r.deid_start, r.deid_end)
            if pos < src_a or (is_end and pos == src_a):
                break
            if pos < src_b or (is_end and pos == src_b):  # inside a replaced segment → snap outward
                return dst_b if is_end else dst_a
            delta = dst_b - src_b
        return pos + delta

    return point(start, False), point(end, True)


def map_span_to_original(start: int, end: int, offset_map: Sequence[Replacement]) -> tuple[int, int]:
    """Map ``[start, end)`` in de-identified text to the original text (a span touching a
    surrogate expands to the whole original PHI segment)."""
    return _map(start, end, offset_map, True)


def map_span_to_deid(start: int, end: int, offset_map: Sequence[Replacement]) -> tuple[int, int]:
    """Map ``[start, end)`` in the original text to the de-identified text."""
    return _map(start, end, offset_map, False)


def deidentify_rows(
    rows: Iterable[dict], *, detector: Detector | None = None, key: bytes | None = None, source: str = "<input>"
) -> Iterable[DeidResult]:
    """De-identify rows with ``id``, ``text`` and optional ``patient``.

    The notes of one patient are detected together (:meth:`Detector.detect_group`), so a name
    found with confidence in one note is also removed from the patient's other notes. Results
    come in input order; the output of a row depends only on its own patient's rows, so any
    partition that keeps each patient's rows together gives the same result.
    """
    import os

    detector = detector or Detector()
    maker = SurrogateMaker(key or os.urandom(32))
    checked: list[dict] = []
    groups: dict[str, list[int]] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "id" not in row or "text" not in row:
            raise InputFormatError("row needs 'id' and 'text'", source=source, line=number)
        if not isinstance(row["text"], str):
            raise InputFormatError(f"row {row['id']!r}: 'text' must be a string", source=source, line=number)
        group = f"p:{row['patient']}" if row.get("patient") is not None else f"n:{number}"
        groups.setdefault(group, []).append(len(checked))
        checked.append(row)
    spans_of: dict[int, list[PHISpan]] = {}
    for idx in groups.values():
        for i, spans in zip(idx, detector.detect_group([checked[i]["text"] for i in idx]), strict=True):
            spans_of[i] = spans
    for i, row in enumerate(checked):
        text = row["text"]
        patient = str(row["patient"]) if row.get("patient") is not None else f"note:{row['id']}"
        spans = spans_of.pop(i)
        new_text, mapping, seen = apply_replacements(text, spans, patient, maker)
        yield DeidResult(
            str(row["id"]), None if row.get("patient") is None else str(row["patient"]), new_text, spans, mapping, seen
        )
