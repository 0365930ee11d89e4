"""Non-Latin names in generated data: Greek, Cyrillic, Japanese (ISO 2022 IR 87, with and
without IR 13), Korean (ISO 2022 IR 149), Chinese (GB18030) and UTF-8.

Each original is pydicom's CT_small with a patient name in that script (the encodings follow
pydicom's chr*.dcm character-set test files) and free text that repeats the name. The engine's
output must pass the audit (no false alarm, no finding without a category); the same output
with one name part written back — into a description, an SR text value, or only into the bytes of a private blob
(a private OB value, encoded as the output encodes text) — must fail it under "A names".
Running text in Chinese, Japanese and Korean puts no space between family and given name: the
engine must scrub, and the audit must catch, a name written that way too.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset

from anonlib.audit.model import AuditInput, AuditResult
from anonlib.audit.run import AuditOptions, audit
from tests.helpers import PSEUDONYM, run, sample


@dataclass(frozen=True)
class Script:
    id: str
    charset: str | tuple[str, ...]
    name: str  # PatientName, with its ideographic and phonetic groups where the script has them
    words: str  # the name as free text mentions it, its parts apart
    head: str  # the rest of a study description in that language ("CT of the head")
    part: str  # a name part of at least 3 characters
    joined: str = ""  # the name as running text writes it (CJK: family and given name, no space)

    @property
    def parts(self) -> list[str]:
        return [p for group in self.name.split("=") for p in group.replace("^", " ").split() if len(p) >= 3]


SCRIPTS = (
    Script("greek", "ISO_IR 126", "Παπαδόπουλος^Ευάγγελος", "Παπαδόπουλος Ευάγγελος", "Αξονική κεφαλής",
           "Παπαδόπουλος"),
    Script("cyrillic", "ISO_IR 144", "Бормотов^Эльдар", "Бормотов Эльдар", "КТ головы", "Бормотов"),
    Script("japanese-ir13-ir87", ("ISO 2022 IR 13", "ISO 2022 IR 87"),
           "ﾊｾｶﾞﾜ^ﾐﾁｺ=長谷川^美智子=はせがわ^みちこ", "長谷川 美智子", "頭部CT", "長谷川", "長谷川美智子"),
    Script("japanese-ir87", ("", "ISO 2022 IR 87"),
           "Hasegawa^Michiko=長谷川^美智子=はせがわ^みちこ", "はせがわ みちこ", "頭部CT", "はせがわ", "はせがわみちこ"),
    Script("korean-ir149", ("", "ISO 2022 IR 149"),
           "Namgung^Haneulbit=南宮^하늘빛=남궁^하늘빛", "남궁 하늘빛", "두부 CT", "하늘빛", "남궁하늘빛"),
    Script("chinese-gb18030", "GB18030", "Ouyang^Xiaodongmei=欧阳^晓冬梅=", "欧阳 晓冬梅", "头部CT", "晓冬梅",
           "欧阳晓冬梅"),
    Script("utf-8", "ISO_IR 192", "Đặng^Thùy Dương=鄧^垂陽=", "Đặng Thùy Dương", "CT đầu", "Dương"),
)
JOINED = [s for s in SCRIPTS if s.joined]


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _original(script: Script, text: str | None = None) -> bytes:
    ds = sample("CT_small.dcm")
    ds.SpecificCharacterSet = list(script.charset) if isinstance(script.charset, tuple) else script.charset
    ds.PatientName = script.name
    ds.StudyDescription = text or f"{script.head} {script.words}"
    ds.ImageComments = f"{script.words}: {script.head}"
    return _bytes(ds)


def _deidentified(original: bytes) -> bytes:
    return _bytes(run(pydicom.dcmread(io.BytesIO(original))).dataset)


def _audit(output: bytes, original: bytes) -> AuditResult:
    return audit([AuditInput("generated #1", output, original)], options=AuditOptions(conformance=False))


def _failing(result: AuditResult) -> list[str]:
    return [f"{f.check}/{f.category} at {f.path}: {f.detail}" for f in result.findings
            if f.verdict in ("fail", "incomplete")]


def _texts(ds: Dataset) -> list[str]:
    return [str(e.value) for e in ds.iterall() if e.VR in ("PN", "LO", "LT", "SH", "ST", "UT", "UC")]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.id)
def test_the_engine_output_passes_the_audit(script: Script) -> None:
    original = _original(script)
    output = _deidentified(original)
    ds = pydicom.dcmread(io.BytesIO(output))
    assert str(ds.PatientName) == PSEUDONYM
    assert ds.SpecificCharacterSet == pydicom.dcmread(io.BytesIO(original)).SpecificCharacterSet
    kept = [p for p in script.parts for text in _texts(ds) if p in text]
    assert not kept, "a name part survived in the engine's output"
    result = _audit(output, original)
    assert result.status == "PASS", "\n".join(_failing(result))
    assert not [f for f in result.findings if f.category == "?"]


def _leak(output: bytes, script: Script, place: str, value: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(output))
    if place == "StudyDescription":
        ds.StudyDescription = f"{script.head} {value}"
    elif place == "SR TextValue":
        concept = Dataset()
        concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121106", "DCM", "Comment"
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        item.ConceptNameCodeSequence = [concept]
        item.TextValue = f"{script.head}: {value}"
        ds.ContentSequence = [item]
    else:  # a private blob: an OB value holding the text as the output encodes it
        encoded = encode_string(f" {value} ", convert_encodings(ds.SpecificCharacterSet))
        ds.private_block(0x0009, "ANONLIB LEAK TEST", create=True).add_new(0x01, "OB", encoded)
    return _bytes(ds)


PLACES = {"StudyDescription": "(0008,1030)", "SR TextValue": "(0040,A730)[0]>(0040,A160)", "private blob": "(0009,1001)"}


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.id)
def test_a_leaked_name_part_fails_the_audit(script: Script, place: str) -> None:
    original = _original(script)
    leaked = _leak(_deidentified(original), script, place, script.part)
    result = _audit(leaked, original)
    assert result.status == "FAIL"
    names = [f for f in result.findings if f.check == "leak" and f.category == "A names" and f.verdict == "fail"]
    assert PLACES[place] in {f.path for f in names}, "\n".join(_failing(result))
    assert not [f for f in result.findings if f.category == "?"], "a finding without a category"


@pytest.mark.parametrize("script", JOINED, ids=lambda s: s.id)
def test_the_engine_scrubs_a_cjk_name_written_without_a_space(script: Script) -> None:
    original = _original(script, text=f"{script.head} {script.joined}")
    ds = pydicom.dcmread(io.BytesIO(_deidentified(original)))
    assert script.joined not in ds.StudyDescription and script.part not in ds.StudyDescription


@pytest.mark.parametrize("script", JOINED, ids=lambda s: s.id)
def test_the_audit_catches_a_cjk_name_written_without_a_space(script: Script) -> None:
    original = _original(script)
    result = _audit(_leak(_deidentified(original), script, "StudyDescription", script.joined), original)
    names = [f for f in result.findings if f.check == "leak" and f.category == "A names" and f.verdict == "fail"]
    assert "(0008,1030)" in {f.path for f in names}, "\n".join(_failing(result))
