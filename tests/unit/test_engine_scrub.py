"""Known identifying values in text: name parts, folding, suffixes, coded values, longer and
shorter forms of IDs — and the words that must survive."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from anonlib.engine import collect_identifiers
from anonlib.engine.identifiers import id_stems, name_parts
from anonlib.engine.text import Identifiers, Scrubber
from tests.helpers import COMPREHENSIVE_SR, CT, minimal, plan_of, run

NAME = "Zorbalina-Smythe^Quentavius"


def _scrubber(**values: set[str]) -> Scrubber:
    shifted = lambda d: (d + dt.timedelta(days=-10)).strftime("%Y%m%d")  # noqa: E731
    return Scrubber(Identifiers(**values), shifted, lambda uid: uid)


def _description(name: str, text: str) -> str:
    return str(run(minimal(CT, PatientName=name, StudyDescription=text)).dataset.StudyDescription)


# -- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "CT HEAD Zorbalina", "CT HEAD Zorbalinas", "CT HEAD Zorbalina's", "CT HEAD Zorbalinas'",
    "CT HEAD ZORBALINA", "CT HEAD zorbalinaes", "CT HEAD Zorbalina\u2019s", "CT HEAD Smythe",
    "CT HEAD Quentavius", "CT HEAD Zorba\x00lina", "CT HEAD Zorba\u00adlina",
])
def test_a_hyphenated_name_part_is_found_in_any_case_and_with_suffixes(text: str) -> None:
    out = _description(NAME, text)
    assert out.startswith("CT HEAD [NAME]")
    assert "zorba" not in out.lower() and "smythe" not in out.lower() and "quent" not in out.lower()


@pytest.mark.parametrize("name", ["Zorba\x01lina^Quentavius", "Zorbalina\x00^Quentavius",
                                  "Zorbalina\r^Quentavius", "Zorba\rlina^Quentavius",
                                  "Smythe, Zorbalina", "Smythe,Zorbalina^Q"])
def test_a_name_with_control_characters_or_commas_is_still_found(name: str) -> None:
    assert _description(name, "CT HEAD Zorbalina") == "CT HEAD [NAME]"


@pytest.mark.parametrize(("name", "text"), [
    ("José^Quentavius", "CT HEAD Jose"), ("Jose^Quentavius", "CT HEAD José"),
    ("JOSÉ^Q", "CT HEAD jose\u0301"), ("Jose^Q", "CT HEAD \uff2a\uff4f\uff53\uff45"),
    ("Zoë^Q", "CT HEAD ZOE"), ("Strauß^Q", "CT HEAD STRAUSS"), ("Søren^Q", "CT HEAD Soren"),
    ("Łukasz^Q", "CT HEAD LUKASZ"),
])
def test_accents_and_compatibility_forms_do_not_hide_a_name(name: str, text: str) -> None:
    assert _description(name, text) == "CT HEAD [NAME]"  # no accent left dangling


def test_apostrophes_split_names_and_join_them() -> None:
    assert {"Brien", "OBrien"} <= name_parts("O'Brien^Sean")
    assert _description("O'Brien^Sean", "CT OBrien and O\u2019Brien") == "CT [NAME] and O\u2019[NAME]"


@pytest.mark.parametrize(("name", "text"), [
    ("Li^Wei", "Lidocaine 2%, Lis, Lies"),  # a two-letter part: that exact word only
    ("Mass^Anna", "Massive bleed"),  # a part inside a longer word
    ("Zorbalina^Q", "Zorbalinaxyz"),
    ("Doe^John^^Dr^Jr", "Dr says Jr"),  # prefix and suffix are not name parts
    ("Name^Date", "[NAME] and [DATE]"),  # never inside the engine's own placeholders
])
def test_ordinary_words_survive(name: str, text: str) -> None:
    assert _description(name, "CT " + text) == "CT " + text


def test_two_letter_part_matches_as_a_whole_word() -> None:
    assert _description("Li^Wei", "CT Dr Li, reviewed") == "CT Dr [NAME], reviewed"


@pytest.mark.parametrize(("name", "text", "kept"), [
    ("Yamada^Taro=山田^太郎", "山田太郎様 CT", "様 CT"),
    ("김^철수", "CT 김철수님 검사", "님 검사"),  # a one-syllable family name goes with the rest
    ("王^小明", "CT 王小明 检查", " 检查"),
    ("Παπαδόπουλος^Γιώργος", "CT ΠΑΠΑΔΟΠΟΥΛΟΣ, Γιωργος", "CT "),
])
def test_names_in_other_scripts(name: str, text: str, kept: str) -> None:
    ds = minimal(CT, SpecificCharacterSet="ISO_IR 192", PatientName=name, StudyDescription=text)
    out = str(run(ds).dataset.StudyDescription)
    assert kept in out and not any(part in out for part in name_parts(name))
    assert not any(part in out for part in ("山田", "太郎", "김", "王", "ΠΑΠ", "Γιω"))


def test_every_person_name_counts_not_only_the_listed_ones() -> None:
    item = Dataset()
    item.EvaluatorName = "Pemberton-Ashgrove^Ignatius"
    ds = minimal(CT, EvaluatorSequence=Sequence([item]), ImageComments="seen by Pemberton-Ashgrove")
    assert "Pemberton" in collect_identifiers(ds, plan_of()).names
    assert "Pemberton" not in str(run(ds).dataset.ImageComments)


def test_a_name_kept_on_purpose_is_not_scrubbed_from_text() -> None:
    plan = plan_of(keep=["OperatorsName"])
    out = run(minimal(CT, OperatorsName="Wexford^Tamsin", StudyDescription="CT Wexford"), plan).dataset
    assert out.StudyDescription == "CT Wexford"


# -- coded values ------------------------------------------------------------------------------

def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def test_coded_values_are_never_scrubbed_but_a_private_codes_meaning_is() -> None:
    """Codes and the meanings of standard codes are kept; the meaning of a private (99…),
    local or scheme-less code is a site's own text: known values are scrubbed from it (the
    audit searches it too, anonlib.dicomvalues.is_standard_code)."""
    region = _code("10200004", "SCT", "Liver")
    region.CodingSchemeVersion = "Mass"
    long_code = Dataset()
    long_code.LongCodeValue, long_code.CodingSchemeDesignator = "Liver Mass 77", "99LOCAL"
    long_code.CodeMeaning = "Mass of Liver"
    urn = Dataset()
    urn.URNCodeValue, urn.CodeMeaning = "urn:x:Liver", "Liver"
    ds = minimal(CT, PatientName="Liver^Mass", BodyPartExamined="LIVER", ImageType=["ORIGINAL", "MASS"],
                 AnatomicRegionSequence=Sequence([region]), StudyDescription="Liver mass",
                 ProcedureCodeSequence=Sequence([long_code, urn]))
    out = run(ds).dataset
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Liver"
    assert out.AnatomicRegionSequence[0].CodingSchemeVersion == "Mass"
    assert out.ProcedureCodeSequence[0].LongCodeValue == "Liver Mass 77"
    assert out.ProcedureCodeSequence[0].CodeMeaning == "[NAME] of [NAME]"
    assert out.ProcedureCodeSequence[1].URNCodeValue == "urn:x:Liver"
    assert out.ProcedureCodeSequence[1].CodeMeaning == "[NAME]"
    assert out.BodyPartExamined == "LIVER" and list(out.ImageType) == ["ORIGINAL", "MASS"]
    assert out.StudyDescription == "[NAME]"  # free text still is scrubbed (the whole name here)


def test_coded_values_in_sr_content_are_kept_and_text_is_scrubbed() -> None:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    item.TextValue = "Finding: mass seen by Finding"
    ds = minimal(COMPREHENSIVE_SR, Modality="SR", PatientName="Finding^Mass",
                 ContentSequence=Sequence([item]))
    out = run(ds).dataset.ContentSequence[0]
    assert out.ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    assert "Finding" not in out.TextValue and "mass" not in out.TextValue


# -- longer and shorter forms of IDs -----------------------------------------------------------

@pytest.mark.parametrize("text", ["CTSCAN01-B", "CTSCAN01_2", "CTSCAN01B", "CTSCAN01.b",
                                  "ctscan01-b-2", "at CTSCAN01-B.", "(CTSCAN01)"])
def test_a_longer_form_of_an_id_is_scrubbed(text: str) -> None:
    scrub = _scrubber(tokens={"CTSCAN01"})
    assert "CTSCAN" not in scrub.known(text).upper() and "[ID]" in scrub.known(text)


@pytest.mark.parametrize(("value", "text"), [
    ("CTSCAN01", "CTSCAN room"), ("CTSCAN01-B", "CTSCAN01 room"), ("CTSCAN01-B", "CTSCAN02"),
    ("PHILIPS-4F3A2", "PHILIPS 4F3A2"),
])
def test_a_shorter_form_of_an_id_is_scrubbed_from_free_text(value: str, text: str) -> None:
    found = Identifiers()
    found.tokens.add(value)
    found.stems |= id_stems(value)
    scrub = _scrubber(tokens=found.tokens, stems=found.stems)
    assert scrub.clean(text).startswith("[ID]")
    assert scrub.known(text) == text  # shorter forms: free text only


@pytest.mark.parametrize(("value", "text"), [
    ("CTSCAN01", "CTSCANNER"),  # a longer word is not a shorter form
    ("CTSCAN01", "ctscan room"),  # a stem matches in the case the ID is written in
    ("SCANNER3", "the scanner"),
    ("MAIN-CT", "MAIN finding"),  # no digit: no stem
    ("2023-0001", "in 2023"),  # no letter: no stem
    ("CT ROOM 2", "CT ROOM"),  # an ID written in words has no stem
    ("Major", "Majority"),  # a token followed by letters is another word
        ("ABC123", "ABC1234"),  # digits running on make another number
    ("123", "123B, 1234 and 123.5"),  # a short number has no longer forms
    ("1234567", "1234567.5 mm"),  # a decimal is not a longer form
])
def test_ordinary_words_are_not_forms_of_an_id(value: str, text: str) -> None:
    scrub = _scrubber(tokens={value}, stems=id_stems(value))
    assert scrub.known(text) == text
    assert "[ID]" not in scrub.clean(text)


def test_stems_of_ids() -> None:
    assert id_stems("CTSCAN01") == {"CTSCAN"}
    assert id_stems("CTSCAN01-B") == {"CTSCAN", "CTSCAN01"}
    assert id_stems("MAIN-CT") == id_stems("20230415") == id_stems("MRN0012345") == set()


def test_placeholders_are_not_matched_again() -> None:
    scrub = _scrubber(names={"Name", "Email"}, tokens={"ID1"})
    assert scrub.clean("Name x@example.org ID1") == "[NAME] [EMAIL] [ID]"


def test_folding_keeps_the_way_back_to_the_original() -> None:
    from anonlib.engine.fold import fold, fold_indexed

    assert fold("Jos\u00e9 \ufb01 Stra\u00dfe\x01\r\n") == "Jose fi Strasse\r\n"
    folded, index = fold_indexed("a\u00dfb\x00c")
    assert folded == "assbc" and index == [0, 1, 1, 2, 4]
    assert fold_indexed("plain ASCII\ttext\r\n") == ("plain ASCII\ttext\r\n", None)


def test_many_values_match_as_a_few_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond a few dozen values the matcher is a trie: same matches, longest first."""
    import anonlib.engine.known as known

    values = Identifiers(
        names={f"Nom{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(80)} | {"Saint", "Li"},
        tokens={f"ST{i:03d}A" for i in range(40)} | {"CTSCAN01", "1234567"},
        phrases={"Saint Elsewhere Hospital"}, dates={f"2023{m:02d}15" for m in range(1, 13)})
    text = ("Saint Elsewhere Hospital: Nomab, Nomcas and Li saw ST007A-2 on CTSCAN01B, 15.03.2023, "
            "2023-12-15 (ref 1234567.5; Nomzz; Lis; ST999A; Saint Jude)")
    many = _scrubber(**vars(values)).clean(text)
    monkeypatch.setattr(known, "_LISTED", 10**6)
    known.matcher.cache_clear()
    few = _scrubber(**vars(values)).clean(text)
    known.matcher.cache_clear()
    assert many == few
    assert many.startswith("[REMOVED]: [NAME], [NAME] and [NAME] saw [ID] on [ID], 20230305, 20231205")
    assert "1234567.5; Nomzz; Lis; ST999A; [NAME] Jude" in many


def test_an_identifying_attribute_kept_on_purpose_is_kept_verbatim_but_text_is_still_scrubbed() -> None:
    """A site that keeps PatientName keeps it, even though its parts are also in another person
    name of the instance (collected, they used to be scrubbed out of the kept name itself); a
    description the site keeps is still scrubbed of known values."""
    ds = minimal(CT, PatientName="Galbraith^Beatrix", OtherPatientNames="Galbraith^Beatrix",
                 StudyDescription="CT head Galbraith")
    out = run(ds, plan_of(actions={"PatientName": "K", "StudyDescription": "K"})).dataset
    assert str(out.PatientName) == "Galbraith^Beatrix"
    assert "Galbraith" not in str(out.StudyDescription)
