"""Safe Harbor rule (C): dates finer than a year, times of day, ages over 89 — and what the
date mode an output was made under means for its regulatory status."""

from __future__ import annotations

from pydicom.dataset import Dataset

from anonlib.audit.model import Verdict
from anonlib.audit.safe_harbor.values import all_dummies, as_text, is_dummy, method_codes
from anonlib.dicomvalues import AGE_CAP, age_in_years, parse_da, text_of, years_between

__all__ = ["detect_date_mode", "date_verdict", "age_verdict", "birth_date_reveals_90",
           "regulatory_status"]

_LONGITUDINAL = {"MODIFIED": "shift", "UNMODIFIED": "keep", "REMOVED": "remove"}
_OPTION_CODES = {"113107": "shift", "113106": "keep"}
_BASIC_PROFILE = "113100"
_SHIFTED = ("shifted per patient: not Safe Harbor as written — Expert Determination "
            "(164.514(b)(1)) or a limited data set (164.514(e))")
_CFR = "164.514(b)(2)(i)(C)"

Judged = tuple[Verdict, str]  # (verdict, detail without the keyword)


def detect_date_mode(ds: Dataset) -> str:
    """``shift``, ``keep``, ``remove`` or ``unknown``, from the instance's de-identification
    markers: LongitudinalTemporalInformationModified first, then the CID 7050 option codes
    (113107 modified dates, 113106 full dates; the Basic Profile alone removes dates)."""
    flag = text_of(ds, "LongitudinalTemporalInformationModified").upper()
    if flag in _LONGITUDINAL:
        return _LONGITUDINAL[flag]
    codes = method_codes(ds)
    for code, mode in _OPTION_CODES.items():
        if code in codes:
            return mode
    return "remove" if _BASIC_PROFILE in codes else "unknown"


def _finer_than_year(value: object, vr: str) -> bool:
    text = as_text(value)
    return vr == "DA" or len(text.split("+")[0].split("-")[0]) > 4


def date_verdict(values: list[object], vr: str, mode: str) -> Judged:
    """The verdict on a DA/DT/TM element's values under ``mode``."""
    if all_dummies(values, vr):
        return "pass", "anonlib dummy date/time"
    if vr == "TM":
        if mode in ("shift", "keep"):
            return "expected", f"time of day kept with the dates ({mode} mode)"
        return "fail", f"time of day is finer than a year ({_CFR}); dates mode: {mode}"
    real = [value for value in values if not is_dummy(value, vr)]
    if not any(_finer_than_year(value, vr) for value in real):
        return "pass", "year only"
    if mode == "shift":
        return "expected", _SHIFTED
    if mode == "keep":
        return "fail", f"full dates kept (Retain Full Dates): finer than a year ({_CFR})"
    return "fail", f"date finer than a year ({_CFR}); dates mode: {mode}"


def age_verdict(values: list[object]) -> Judged:
    """AS values: over 89 must be capped at 090Y (read as 90 or older) or removed."""
    ages = [(as_text(value), age_in_years(as_text(value))) for value in values]
    if any(age is None for _, age in ages):
        return "fail", "not a valid age string: cannot show it is under 90"
    if any(age is not None and age >= 90 and text != AGE_CAP for text, age in ages):
        return "fail", f"age over 89 ({_CFR}): must be {AGE_CAP} or absent"
    if any(text == AGE_CAP for text, _ in ages):
        return "expected", f"ages over 89 aggregated as 90+ ({AGE_CAP})"
    return "pass", "age under 90"


def birth_date_reveals_90(ds: Dataset) -> bool:
    """True when the birth date and the study (or series/content) date put the patient at 90
    or older. A per-patient shift keeps the interval, so this holds on shifted dates too."""
    birth = parse_da(str(ds.get("PatientBirthDate", "") or ""))
    if birth is None or is_dummy(str(ds.get("PatientBirthDate")), "DA"):
        return False
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        day = parse_da(str(ds.get(keyword, "") or ""))
        if day is not None:
            return years_between(birth, day) >= 90
    return False


_STATUS = {
    "shift": (
        "Dates were shifted by a per-patient offset (Retain Longitudinal Temporal Information with "
        "Modified Dates, DICOM code 113107). The shifted dates are still finer than a year and the "
        "offset is derived from the real dates, so this output is not de-identified under the HIPAA "
        "Safe Harbor method (45 CFR 164.514(b)(2)) as written. It may be released as de-identified "
        "only under Expert Determination (164.514(b)(1)), or used as a limited data set under a data "
        "use agreement (164.514(e)). All other Safe Harbor categories must still pass."
    ),
    "keep": (
        "Full dates were retained (Retain Longitudinal Temporal Information with Full Dates, DICOM "
        "code 113106). Real dates finer than a year remain, so this output is not de-identified under "
        "the HIPAA Safe Harbor method (45 CFR 164.514(b)(2)) as written. It may be released only under "
        "Expert Determination (164.514(b)(1)) or as a limited data set under a data use agreement "
        "(164.514(e)); real dates are held to a stricter standard than shifted ones."
    ),
    "remove": (
        "Dates finer than a year were removed or replaced with dummies (Basic Profile without a "
        "longitudinal option). This is consistent with the date rule of the HIPAA Safe Harbor method "
        "(45 CFR 164.514(b)(2)(i)(C)), and the output meets Safe Harbor as far as this audit can "
        "tell when no other finding fails; the covered entity must also have no actual knowledge "
        "that the remaining information could identify the individual (164.514(b)(2)(ii))."
    ),
}
_UNKNOWN = (
    "The date mode could not be read from the de-identification markers (or differs between "
    "instances). Until it is known, dates finer than a year are treated as real dates: such "
    "output is not de-identified under the HIPAA Safe Harbor method (45 CFR 164.514(b)(2)); it "
    "would need Expert Determination (164.514(b)(1)) or a limited data set agreement (164.514(e))."
)


def regulatory_status(date_mode: str) -> str:
    """One paragraph on what the date mode means under HIPAA (45 CFR 164.514)."""
    return _STATUS.get(date_mode, _UNKNOWN)
