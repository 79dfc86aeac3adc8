"""De-identification: rules, surrogates, date shifting, offset maps, file handling."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.deid import (
    Detector,
    SurrogateMaker,
    deidentify_file,
    deidentify_rows,
    map_span_to_deid,
    map_span_to_original,
)
from clinical_nlp.deid.core import PHISpan, apply_replacements
from clinical_nlp.deid.rules import find_rule_spans
from clinical_nlp.errors import InputFormatError

TEXT = (
    "Pt seen by Dr. Smith on 8/25/2019, call 410-322-1419 or mail jdoe@mail.com. "
    "Pain 8/10. PS 5/5. Age 94 yo. See http://x.org/a from 10.0.0.1. MRN: 12345678."
)


def labels_at(text, spans, needle):
    i = text.index(needle)
    return {s.label for s in spans if s.start < i + len(needle) and i < s.end}


def test_rules_find_regular_phi_and_skip_ratios():
    spans = [PHISpan(a, b, lab) for a, b, lab in find_rule_spans(TEXT)]
    assert labels_at(TEXT, spans, "8/25/2019") == {"Date"}
    assert "Phone" in labels_at(TEXT, spans, "410-322-1419")
    assert labels_at(TEXT, spans, "jdoe@mail.com") == {"Email"}
    assert "URL" in labels_at(TEXT, spans, "http://x.org/a")
    assert labels_at(TEXT, spans, "10.0.0.1") == {"IP"}
    assert labels_at(TEXT, spans, "12345678") == {"ID"}
    assert labels_at(TEXT, spans, "94") == {"Age"}
    assert labels_at(TEXT, spans, "8/10") == set()  # pain score
    assert labels_at(TEXT, spans, "5/5") == set()  # ventilator setting


def test_detector_finds_titled_clinician_name():
    spans = Detector().detect(TEXT)
    assert labels_at(TEXT, spans, "Smith")


def test_surrogates_consistent_per_patient_and_dates_keep_intervals():
    rows = [
        {"id": "a", "patient": "p1", "text": "Dr. Smith saw her 8/25/2019."},
        {"id": "b", "patient": "p1", "text": "Dr. Smith called 8/30/2019."},
        {"id": "c", "patient": "p2", "text": "Dr. Smith called 8/30/2019."},
    ]
    res = list(deidentify_rows(rows, key=b"secret"))
    assert "Smith" not in res[0].text and "8/25/2019" not in res[0].text
    assert res[0].surrogates["Smith"] == res[1].surrogates["Smith"]
    d1 = re.search(r"\d+/\d+/\d+", res[0].text).group()
    d2 = re.search(r"\d+/\d+/\d+", res[1].text).group()
    import datetime as dt

    p = lambda s: dt.datetime.strptime(s, "%m/%d/%Y").date()  # noqa: E731
    assert (p(d2) - p(d1)).days == 5
    maker = SurrogateMaker(b"secret")
    assert maker.date_shift("p1") != 0 and -365 <= maker.date_shift("p2") <= -30
    again = list(deidentify_rows(rows, key=b"secret"))
    assert [r.text for r in again] == [r.text for r in res]


def test_offset_map_round_trip_example():
    text = "Seen by Smith today."
    new, mapping, _ = apply_replacements(text, [PHISpan(8, 13, "HCPName")], "p", SurrogateMaker(b"k"))
    i = new.index("today")
    assert map_span_to_original(i, i + 5, mapping) == (text.index("today"), text.index("today") + 5)
    assert map_span_to_original(8, 9, mapping) == (8, 13)  # inside surrogate → whole original PHI
    assert map_span_to_deid(0, 4, mapping) == (0, 4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=0, max_size=8, unique=True), st.data())
def test_offset_map_preserves_non_phi_text(cuts, data):
    text = "abcdefghij klmnopqrst uvwxyz ABCDEFGHIJ KLMNOPQRST UVWXYZ 0123456789"
    pts = sorted(cuts)
    spans = [PHISpan(pts[i], pts[i + 1], "HCPName") for i in range(0, len(pts) - 1, 2) if pts[i + 1] > pts[i]]
    new, mapping, _ = apply_replacements(text, spans, "p", SurrogateMaker(b"k"))
    covered = {i for s in spans for i in range(s.start, s.end)}
    for i in range(len(text)):
        if i not in covered:
            a, b = map_span_to_deid(i, i + 1, mapping)
            assert new[a:b] == text[i]
            assert map_span_to_original(a, b, mapping) == (i, i + 1)


def test_deidentify_file_contract(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "n1", "patient": 7, "text": TEXT}) + "\n", encoding="utf-8")
    out, phi = tmp_path / "out.jsonl", tmp_path / "phi.jsonl"
    summary, _ = deidentify_file(inp, out, phi, key=b"k")
    row = json.loads(out.read_text())
    assert row["deidentified"] is True and row["deid_method"] and row["id"] == "n1"
    assert row["patient"].startswith("pt-") and "7" != row["patient"]  # a keyed pseudonym, not the patient id
    deidentify_file(inp, tmp_path / "again.jsonl", key=b"k")
    assert json.loads((tmp_path / "again.jsonl").read_text())["patient"] == row["patient"]  # stable per key
    assert "410-322-1419" not in row["text"]
    spans = json.loads(phi.read_text())["spans"]
    assert any(TEXT[s["start"] : s["end"]] == "8/25/2019" and s["label"] == "Date" for s in spans)
    assert summary.notes == 1 and not (tmp_path / "map.jsonl").exists()


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty"),
        (b"{not json}\n", "in.jsonl:1: invalid JSON"),
        (b'{"id": "a"}\n', "text"),
        (b"\xff\xfe\x00bad", "in.jsonl:1: not valid UTF-8"),
        (b'{"id":"a","text":"ok"}\n{"id":"b","text":"caf\xe9"}\n', "in.jsonl:2: not valid UTF-8"),
        (b'{"id":"a","text":"x"}\n{"id":"a","text":"y"}\n', "in.jsonl:2: duplicate id 'a'"),
        (b'{"id":"a","text":"x"}\n{"id":"e","text":"  "}\n', "in.jsonl:2: note 'e' has an empty text"),
        (b'{"id":"big","text":"' + b"word " * 1_000_000 + b'"}\n', "note 'big' has 5,000,000 characters"),
    ],
    ids=["empty-file", "bad-json", "no-text", "not-utf8", "not-utf8-line-2", "duplicate", "empty-text", "5MB"],
)
def test_bad_input_is_refused_without_output(tmp_path, content, needle):
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(content)
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier run's output\n")  # nothing already written is lost
    with pytest.raises(InputFormatError, match=needle):
        deidentify_file(inp, out, tmp_path / "phi.jsonl")
    assert out.read_text() == "an earlier run's output\n" and not (tmp_path / "phi.jsonl").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_lexicons_come_from_installed_packages():
    from clinical_nlp.deid.gazetteer import census_ranks, is_namelike, zipf

    first, last = census_ranks()
    assert first["james"] <= 5 and last["smith"] == 1 and len(last) > 50_000
    assert zipf("the") > 7 and zipf("qzxv") == 0.0
    assert is_namelike("suzette") and not is_namelike("was")


def test_context_rules_find_relatives_signatures_and_places():
    from clinical_nlp.deid.context import find_context_names

    text = (
        "Social: husband Milovan called. Daughter was called.\n"
        "Plan per B. Kargas. Drs Ferullo and Saeed aware.\n"
        "Transferred from Kessler Adventist Hospital.\nDan A. Forman, RRT\n"
    )
    got = {(text[a:b], lab) for a, b, lab, _ in find_context_names(text)}
    assert ("Milovan", "RelativeProxyName") in got
    assert ("was", "RelativeProxyName") not in got
    assert {("B", "HCPName"), ("Kargas", "HCPName"), ("Ferullo", "HCPName"), ("Saeed", "HCPName")} <= got
    assert ("Kessler", "Location") in got and ("Forman", "HCPName") in got and ("Dan", "HCPName") in got


def test_confident_names_propagate_to_the_patients_other_notes():
    det = Detector()
    texts = ["Spoke with wife Zorabel about the plan.", "Zorabel visited today, updated by RN."]
    spans = det.detect_group(texts)
    assert labels_at(texts[1], spans[1], "Zorabel")
    alone = Detector(propagate=False).detect(texts[1])
    rows = [{"id": str(i), "patient": "p", "text": t} for i, t in enumerate(texts)]
    res = list(deidentify_rows(rows, key=b"k"))
    assert "Zorabel" not in res[1].text
    assert res[0].surrogates["Zorabel"] == res[1].surrogates["Zorabel"]
    assert isinstance(alone, list)


def test_clock_times_and_vent_settings_are_not_dates():
    text = "Lasix given at 2000. PSV 10/5 overnight, CPAP 5/5. TV 500-1000. Seen 8/13 in clinic."
    spans = [PHISpan(a, b, lab) for a, b, lab in find_rule_spans(text)]
    assert labels_at(text, spans, "2000") == set()
    assert labels_at(text, spans, "10/5") == set() and labels_at(text, spans, "5/5") == set()
    assert labels_at(text, spans, "500-1000") == set()
    assert labels_at(text, spans, "8/13") == {"Date"}


@pytest.mark.parametrize(
    ("text", "surface", "label"),
    [
        ("Last colonoscopy 2/2001, normal.", "2/2001", "Date"),
        ("Echo 11/1998 showed EF 40%.", "11/1998", "Date"),
        ("Born in 1932, widowed.", "1932", "DateYear"),
        ("DOB: 1928", "1928", "DateYear"),
        ("Lasix at 1930 hrs.", "1930", None),
        ("Seen 2020/01/05 in clinic.", "2020/01/05", "Date"),
        ("Surgery on 05.01.2020 abroad.", "05.01.2020", "Date"),
        ("Hct 30.5 today", "30.5", None),
        ("Seen 8/13 in clinic.", "8/13", "Date"),
    ],
)
def test_month_year_dates_and_years_of_birth(text, surface, label):
    spans = [PHISpan(a, b, lab) for a, b, lab in find_rule_spans(text)]
    found = labels_at(text, spans, surface)
    assert label in found if label else found == set()  # a year inside a date may match the year rule too


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("Lives at 123 Main Street, Boston, MA 02115.", ["123 Main Street", "Boston", "02115"]),
        ("Address: 45 Oak Ave Apt 3, Springfield IL 62704", ["45 Oak Ave Apt 3", "Springfield", "62704"]),
        ("2 MM ST DEPRESSION in V4-V6, Head CT x 2 Court", []),  # the ST segment, a CT scan
        ("John Smith, MD saw the patient.", []),  # MD the degree, not Maryland: no ZIP code after it
        ("2 PIVS IN PLACE. RR 20 GOOD RESP DRIVE. HEPARIN IN 25000 UNITS. PA 20000", []),  # clinical readings
        ("Seen at 60 Evergreen Place in East Orange, NJ 07018.", ["East Orange", "07018"]),  # no "Place" suffix
    ],
)
def test_us_addresses_are_places(text, places):
    found = [text[a:b] for a, b, lab in find_rule_spans(text) if lab == "Location"]
    assert found == places


def test_an_area_code_in_brackets_without_a_space_is_part_of_the_phone():
    text = "Call (617)555-0199 or 617-555-0100."
    (res,) = deidentify_rows([{"id": "a", "patient": "p", "text": text}], key=b"k")
    assert "617" not in res.text and re.fullmatch(r"Call \(\d{3}\)\d{3}-\d{4} or \d{3}-\d{3}-\d{4}\.", res.text)


@pytest.mark.parametrize(
    ("original", "form"), [("2020/01/05", r"\d{4}/\d{2}/\d{2}"), ("05.01.2020", r"\d{2}\.\d{2}\.\d{4}")]
)
def test_other_date_forms_shift_in_their_own_form(original, form):
    import datetime as dt

    maker = SurrogateMaker(b"k")
    shifted = maker.shift_date("p", original)
    assert re.fullmatch(form, shifted)
    parse = "%Y/%m/%d" if "/" in original else "%m.%d.%Y"
    delta = dt.datetime.strptime(shifted, parse) - dt.datetime.strptime(original, parse)
    assert delta.days == maker.date_shift("p")


def test_address_and_month_year_surrogates_keep_their_form():
    text = "Lives at 123 Main Street, Boston, MA 02115. Colonoscopy 2/2001."
    (res,) = deidentify_rows([{"id": "a", "patient": "p", "text": text}], key=b"k")
    assert not {"123 Main", "Boston", "02115", "2/2001"} & set(re.findall(r"123 Main|Boston|02115|2/2001", res.text))
    assert re.search(r"at \d+ [A-Z][a-z]+ Street, [A-Z][A-Za-z ]+, MA \d{5}\. Colonoscopy \d{1,2}/\d{4}\.$", res.text)
    shift = SurrogateMaker(b"k").date_shift("p")
    month, year = map(int, re.search(r"(\d{1,2})/(\d{4})\.$", res.text).groups())
    import datetime as dt

    assert (month, year) == ((d := dt.date(2001, 2, 15) + dt.timedelta(days=shift)).month, d.year)


@pytest.mark.parametrize(
    ("text", "ident"),
    [
        ("Patient ID: A1234567", "A1234567"),
        ("Insurance ID: XYZ123456789", "XYZ123456789"),
        ("NPI 1234567893", "1234567893"),
        ("License # MA-123456", "MA-123456"),
        ("Heparin 10000 units, bed # 12", None),
    ],
)
def test_identifiers_after_their_field_name(text, ident):
    found = [text[a:b] for a, b, lab in find_rule_spans(text) if lab == "ID"]
    assert found == ([ident] if ident else [])


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Patient: SMITH, JOHN A\nHPI: chest pain", {"SMITH", "JOHN", "A"}),
        ("Name: Jane Doe   DOB: 01/02/1950", {"Jane", "Doe"}),
        ("PATIENT NAME: O'BRIEN, MARY", {"O'BRIEN", "MARY"}),
        ("Patient: Alert And Oriented today", set()),  # the line goes on: not a name field
        ("Patient: stable overnight", set()),
    ],
)
def test_a_header_field_with_the_patients_name(text, names):
    from clinical_nlp.deid.context import find_context_names

    ruled = {text[a:b] for a, b, lab, strong in find_context_names(text) if lab == "PTName" and strong}
    assert ruled == names
    found = {text[s.start : s.end] for s in Detector().detect(text)}
    assert names <= set(" ".join(found).split())


def test_fast_crf_features_equal_reference_features():
    from clinical_nlp.deid.model import _crf_items, _crf_items_reference, tokenize

    for text in (TEXT, "SOCIAL: WIFE MARY CALLED.\nQ. LANDER RRT\n", "per b. kargas, pt's son John aware"):
        toks = tokenize(text)
        fast, ref = _crf_items(text, toks), _crf_items_reference(text, toks)
        assert [sorted(x) for x in fast] == [sorted(x) for x in ref]


@pytest.mark.parametrize("text", ["a 98 y.o. woman", "AGE 98, admitted", "98 years of age", "94yo man"])
def test_ages_over_89_in_common_forms(text):
    spans = [PHISpan(a, b, lab) for a, b, lab in find_rule_spans(text)]
    assert any(s.label == "Age" for s in spans)


def test_multiword_places_propagate_within_a_patient():
    texts = ["Plan: transfer to Sacred Heart Memorial Hospital today.", "to rehab(sacred heart memorial) today"]
    spans = Detector().detect_group(texts)
    assert labels_at(texts[1], spans[1], "sacred heart") == {"Location"}


def test_capitalised_name_pairs_are_candidates_but_not_at_line_start():
    from clinical_nlp.deid.context import find_context_names

    text = "Team spoke with Radu Crosson (closest relative). Monitor U/O and\nHematocrit Diuresis as needed."
    got = {text[a:b] for a, b, lab, _ in find_context_names(text) if lab == "Name?"}
    assert got == {"Radu", "Crosson"}


def test_patient_surname_propagates_to_a_bare_mention_in_another_note():
    """'Mr. John Smith' in one note: a bare 'Smith' in the same patient's next note is PHI too
    (a common surname, Zipf < 5.2, is still propagated for patient names)."""
    from clinical_nlp.deid.core import Detector

    texts = ["Mr. John Smith was seen by Dr. Adams on 3/14/2094.", "Smith doing well, wife Mary at bedside."]
    second = Detector().detect_group(texts)[1]
    assert any(texts[1][s.start : s.end] == "Smith" and s.label == "PTName" for s in second)
    alone = Detector().detect_group(texts[1:])[0]  # without the first note nothing says Smith is a name
    assert not any(texts[1][s.start : s.end] == "Smith" for s in alone)


def test_clinical_vocabulary_is_shielded_and_synthetic_names_are_caught():
    from clinical_nlp.deid import Detector

    text = (
        "# History of Present Illness\nBob965\n is a 40 year-old male. IMPRESSION: stable.\n"
        "# Assessment and Plan\nKeeling57 family history of asthma. Mg2 replaced, Covid19 negative."
    )
    spans = Detector().detect(text)
    found = {text[s.start : s.end] for s in spans}
    assert {"Bob965", "Keeling57"} <= found
    assert not found & {"Illness", "IMPRESSION", "Assessment", "Plan", "History", "Mg2"}


@pytest.mark.parametrize(
    ("surface", "kept"),
    [
        ("Pt John Smith", "John Smith"),
        ("John Smith, Pt", "John Smith"),
        ("IMPRESSION:", None),
        ("History of Present Illness", None),
        ("Lakeside Nursing Home", "Lakeside Nursing Home"),
        ("St. Agnes", "St. Agnes"),
        ("12/25", "12/25"),
    ],
)
def test_shield_words_are_cut_from_the_ends_of_a_detection(surface, kept):
    from clinical_nlp.deid.shield import unshielded_part

    text = f"on {surface} today"
    got = unshielded_part(text, 3, 3 + len(surface))
    assert (text[got[0] : got[1]] if got else None) == kept


_EDGE_WORDS = ["Pt", "History", "of", "the", "IMPRESSION", "John", "Smith", "Lakeside", "A.", "12/25", ":", ", "]


@given(st.lists(st.sampled_from(_EDGE_WORDS), min_size=1, max_size=7), st.integers(0, 3), st.integers(0, 3))
@settings(max_examples=300, deadline=None)
def test_unshielded_part_is_a_trimmed_sub_span_free_of_shield_words_at_its_ends(words, before, after):
    from clinical_nlp.deid.shield import SHIELD, unshielded_part

    text = "x " * before + " ".join(words) + " y" * after
    start = 2 * before
    end = start + len(" ".join(words))
    got = unshielded_part(text, start, end)
    letters = re.findall(r"[A-Za-z]+", text[start:end])
    if got is None:  # only shield or joining words
        assert letters and all(w.lower() in SHIELD or w.lower() in {"of", "the"} for w in letters)
        return
    a, b = got
    assert start <= a < b <= end
    kept = re.findall(r"[A-Za-z]+", text[a:b])
    assert not kept or (
        kept[0].lower() not in SHIELD | {"of", "the"} and kept[-1].lower() not in SHIELD | {"of", "the"}
    )
    assert set(kept) >= {w for w in letters if w in ("John", "Smith", "Lakeside", "A")} or not kept


def test_a_note_opening_with_pt_keeps_it_and_loses_the_name():
    text = "Pt John Smith was seen today. Pt Mary Jones, wife, called."
    spans = Detector().detect(text)
    found = {text[s.start : s.end] for s in spans}
    assert text.startswith("Pt ") and not any(f.lower().startswith("pt") for f in found)
    assert {"John", "Smith", "Mary", "Jones"} <= set(" ".join(found).split())


def test_metadata_is_deidentified_with_the_text(tmp_path):
    """File names (holding the patient's name) become pseudonyms, dates shift with the text, identifiers
    and names in free-text fields are replaced; the input's own 'deidentified' claim is dropped."""
    inp = tmp_path / "in.jsonl"
    row = {
        "id": "n1",
        "patient": "3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b",
        "source": "Bob965_Keeling57_3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b.json",
        "date": "1991-07-08T01:39:26.097+00:00",
        "encounter": "urn:uuid:dcac858b-5fe7-36bc-773d-77b8458f89d0",
        "author": "Dr. Lucas404 Block661",
        "note_type": "History and physical note",
        "deidentified": True,
        "text": "1991-07-08\nBob965 Keeling57 is seen today.",
    }
    inp.write_text(json.dumps(row) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    deidentify_file(inp, out, key=b"k")
    got = json.loads(out.read_text())
    flat = json.dumps(got)
    for secret in ("Bob965", "Keeling57", "Lucas404", "Block661", "3f6fd0bb", "dcac858b", "1991-07-08"):
        assert secret not in flat, secret
    assert got["source"].startswith("src-") and got["encounter"].startswith("ref-")
    shifted = got["text"].splitlines()[0]
    assert got["date"].startswith(shifted + "T01:39:26")  # the same shift as the text's date
    assert got["note_type"] == "History and physical note" and got["author"].startswith("person-")


def test_surrogate_augmentation_keeps_offsets_labels_and_case():
    from clinical_nlp.deid.augment import augment

    doc = {"id": "n1", "text": "SEEN BY DR SMITH ON 3/4 AT MERCY. call 410-555-1212", "spans": [
        {"start": 11, "end": 16, "label": "HCPName"}, {"start": 20, "end": 23, "label": "Date"},
        {"start": 27, "end": 32, "label": "Location"}, {"start": 39, "end": 51, "label": "Phone"}]}  # fmt: skip
    copies = augment([doc, {"id": "n2", "text": "no phi", "spans": []}], copies=3, seed=1)
    assert [c["id"] for c in copies] == ["n1~aug0", "n1~aug1", "n1~aug2"]  # notes without PHI are not copied
    for c in copies:
        assert [s["label"] for s in c["spans"]] == ["HCPName", "Date", "Location", "Phone"]
        for s in c["spans"]:
            assert c["text"][s["start"] : s["end"]] == s["text"]
        assert c["spans"][0]["text"].isupper() and c["spans"][2]["text"].isupper()  # the note's case is kept
        assert c["text"].startswith("SEEN BY DR ") and " call " in c["text"]
    assert len({c["text"] for c in copies}) == 3


def test_place_runs_group_the_words_of_one_place_name():
    from clinical_nlp.deid.context import place_runs

    text = "from St. Mary's to Bel Air\nMill"
    spans = [(5, 8), (9, 15), (19, 22), (23, 26), (27, 31)]  # St., Mary's, Bel, Air, Mill (next line)
    # "to" between Mary's and Bel breaks a run, and so does a line break
    assert place_runs(text, spans) == [[(5, 8), (9, 15)], [(19, 22), (23, 26)], [(27, 31)]]
    assert place_runs(text, [(9, 15), (5, 8), (5, 8)]) == [[(5, 8), (9, 15)]]  # any order, duplicates once
    assert place_runs(text, []) == []


class _ByWord:
    """A tagger answering a fixed P(O) per word (default: sure it is not PHI)."""

    labels = ("O", "Location")

    def __init__(self, p_o: dict[str, float]):
        self.p_o = p_o

    def proba(self, text, toks, only=None):
        import numpy as np

        rows = range(len(toks)) if only is None else only
        po = [self.p_o.get(text[toks[i][0] : toks[i][1]], 1.0) for i in rows]
        return np.array([[p, 1 - p] for p in po])


@pytest.mark.parametrize(
    ("p_o", "redacted"),
    [
        ({"Bel": 0.999, "Air": 1.0}, {"Bel", "Air"}),  # the tagger accepts part of the place: all of it is kept
        ({"Bel": 1.0, "Air": 1.0}, set()),  # sure of every word: the place is vetoed as a whole
    ],
)
def test_the_tagger_vetoes_a_multi_word_place_only_as_a_whole(p_o, redacted):
    text = "Husband just started a new job in Bel Air and is staying with her sister."
    spans = Detector(_ByWord(p_o), review_below=None, propagate=False).detect(text)  # type: ignore[arg-type]
    assert {w for s in spans for w in text[s.start : s.end].split()} == redacted


def test_a_relatives_common_first_name_found_once_is_redacted_in_the_patients_other_notes():
    tagger = _ByWord({"David": 0.2})  # sure enough to be shared with the patient's other notes
    tagger.labels = ("O", "RelativeProxyName")  # type: ignore[misc]
    texts = ["Son David called about the plan.", "DAVID DOES NOT HAVE MUCH CONTACT WITH HIM."]
    first, second = Detector(tagger, review_below=None).detect_group(texts)  # type: ignore[arg-type]
    assert [texts[0][s.start : s.end] for s in first] == ["David"]
    # "david" (Zipf 5.1) is propagated like a patient's own name; "will" or "may" (Zipf 6+) would not be
    assert [(texts[1][s.start : s.end], s.label) for s in second] == [("DAVID", "RelativeProxyName")]


def test_us_place_tables_come_back_the_same_from_the_cache_and_a_bad_cache_is_rebuilt(tmp_path, monkeypatch):
    from clinical_nlp.deid import gazetteer

    monkeypatch.setenv("CLINICAL_NLP_CACHE_DIR", str(tmp_path))
    gazetteer.us_places.cache_clear()
    try:
        built = gazetteer.us_places()  # parsed from the package, then written
        (cached,) = tmp_path.glob("us-places-*.json")
        assert ("bel", "air") in built[1] and "rockville" in built[0]
        gazetteer.us_places.cache_clear()
        assert gazetteer.us_places() == built  # read back from the cache file ...
        cached.write_text(json.dumps({"one": ["zzplace"], "multi": [["zz", "town"]]}), encoding="utf-8")
        gazetteer.us_places.cache_clear()
        assert gazetteer.us_places() == (frozenset({"zzplace"}), frozenset({("zz", "town")}))  # ... not the package
        cached.write_text("{not json", encoding="utf-8")
        gazetteer.us_places.cache_clear()
        assert gazetteer.us_places() == built  # an unreadable cache is ignored and rewritten
        assert json.loads(cached.read_text(encoding="utf-8"))["one"] == sorted(built[0])
    finally:
        gazetteer.us_places.cache_clear()


def test_saint_places_mid_line_signatures_and_run_together_phones():
    from clinical_nlp.deid.context import find_context_names

    text = (
        "Pt wishes to return to St. Agnes after weaning. Takes St John's wort.\n"
        "BILATERAL WHEEZES. MARCO VELLANI RRT\n"
        "Rhythm SR TO ST. HIGH PRESSURES. wife (Ann Roe, 202232-4455) in.\n"
    )
    found = {(text[a:b], lab, strong) for a, b, lab, strong in find_context_names(text)}
    assert {("St", "Location", True), ("Agnes", "Location", True)} <= found  # no tagger veto
    assert not any(w in ("John", "ST") and strong for w, _, strong in found)  # the herb, the ST segment
    assert {("MARCO", "HCPName", True), ("VELLANI", "HCPName", True)} <= found
    phones = [text[a:b] for a, b, lab in find_rule_spans(text) if lab == "Phone"]
    assert phones == ["202232-4455"]
    spans = Detector().detect(text)
    assert labels_at(text, spans, "St. Agnes") and labels_at(text, spans, "MARCO")


def test_metadata_identifiers_people_and_old_ages_are_replaced_at_any_depth(tmp_path):
    """Keys naming an identifier, a person or an age over 89 are replaced whatever the value's type
    ('mrn': 123456 was kept: numbers were kept and digit strings never reached the detector)."""
    inp = tmp_path / "in.jsonl"
    row = {
        "id": "n1",
        "patient": "p1",
        "text": "Seen today for CHF.",
        "mrn": 123456,
        "patientMRN": "MRN-778899",
        "insurance_id": "XK99-1234",
        "contact": {"phone": "617-555-0199", "emailAddress": "jd@example.org", "zip_code": "02115"},
        "next_of_kin": "Mary Doe",
        "patient_name": "John Doe",
        "attending": "Jane Roe",
        "visits": [{"signed_by": "Jane Roe", "room": 12}],
        "age": 92,
        "ageYears": "95",
        "other_number": "6175550199",
        "sample_name": "Cardiology consult",
        "note_type": "Progress note",
        "page": 3,
        "urgent": True,
    }
    inp.write_text(json.dumps(row) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    deidentify_file(inp, out, key=b"k")
    got = json.loads(out.read_text())
    flat = json.dumps(got)
    for secret in ("123456", "778899", "XK99", "617", "555", "jd@", "02115", "Mary", "John", "Roe", "92", "95"):
        assert secret not in flat, secret
    assert got["mrn"].startswith("id-") and got["contact"]["phone"].startswith("id-")
    assert got["next_of_kin"].startswith("person-") and got["visits"][0]["signed_by"].startswith("person-")
    assert got["age"] == "90+" and got["ageYears"] == "90+"
    assert got["visits"][0]["room"] == 12 and got["page"] == 3 and got["urgent"] is True
    assert got["sample_name"] == "Cardiology consult" and got["note_type"] == "Progress note"
    again = tmp_path / "again.jsonl"
    deidentify_file(inp, again, key=b"k")
    assert json.loads(again.read_text())["mrn"] == got["mrn"]  # a keyed pseudonym: stable for one key


def test_metadata_key_words():
    from clinical_nlp.deid.metadata import key_words

    assert key_words("patientMRN") == ["patient", "mrn"]
    assert key_words("zip_code") == ["zip", "code"]
    assert key_words("HTTPUrl") == ["http", "url"]
    assert key_words("emailAddress2") == ["email", "address", "2"]


@pytest.mark.parametrize(
    ("original", "shifted"),
    [
        ("03-Apr-2021", "22-Feb-2021"),
        ("April 3rd, 2021", "February 22nd, 2021"),
        ("January 2, 1930", "November 23, 1929"),
        ("3 March 2020", "23 January 2020"),
        ("Apr-2021", "Mar-2021"),
        ("3rd of April", "23rd of February"),
        ("MAR 31", "FEB 20"),
        ("12-DEC-99", "02-NOV-99"),
        ("5 Jun '21", "26 Apr '21"),
        ("May 1", "March 22"),
    ],
)
def test_month_name_dates_shift_in_their_own_form(original, shifted):
    from clinical_nlp.deid.month_dates import shift_month_name_date

    assert shift_month_name_date(original, -40) == shifted
    assert shift_month_name_date("hello 5", -40) is None and shift_month_name_date("31-Feb-2020", -40) is None


def test_hyphenated_month_dates_and_device_ids_are_phi():
    text = "Seen 03-Apr-2021 (Apr-2021). Serial number SN-48213377A, license plate 7ABC123, VIN 1HGCM82633A004352."
    found = {(text[s.start : s.end], s.label) for s in Detector().detect(text)}
    assert {("03-Apr-2021", "Date"), ("Apr-2021", "Date"), ("SN-48213377A", "ID"), ("7ABC123", "ID")} <= found
    assert ("1HGCM82633A004352", "ID") in found
    plain = "A 10-hole plate was placed. Serial 12-lead ECGs showed no change."
    assert not [s for s in Detector().detect(plain) if s.label == "ID"]


@pytest.mark.parametrize("key", [bytes([k]) * 8 for k in range(12)])
def test_a_facility_surrogate_keeps_the_words_the_span_left_in_the_text(key):
    """Before: "at ABC Medical Center" (span "ABC Medical") read "at St. Anne Medical Center Center"."""
    (res,) = deidentify_rows([{"id": "m", "text": "Treated at ABC Medical Center for further studies."}], key=key)
    assert "ABC" not in res.text and res.text.endswith("Center for further studies.")
    words = res.text.split()
    assert not any(a.lower() == b.lower() for a, b in zip(words, words[1:])), res.text  # no word twice in a row
