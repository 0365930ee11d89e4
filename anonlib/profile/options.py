"""The PS3.15 profile options anonlib implements, and the date modes built on them."""

from __future__ import annotations

import enum

__all__ = ["Option", "DateMode", "DEFAULT_OPTIONS", "BASIC_PROFILE_CODE"]

#: CID 7050 code of the Basic Application Level Confidentiality Profile.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")


class Option(enum.Enum):
    """A PS3.15 option: its Table E.1-1 column, CID 7050 code and code meaning."""

    RETAIN_SAFE_PRIVATE = ("rtn_safe_priv_opt", "113111", "Retain Safe Private Option")
    RETAIN_UIDS = ("rtn_uids_opt", "113110", "Retain UIDs Option")
    RETAIN_DEVICE_IDENTITY = ("rtn_dev_id_opt", "113109", "Retain Device Identity Option")
    RETAIN_INSTITUTION_IDENTITY = ("rtn_inst_id_opt", "113112", "Retain Institution Identity Option")
    RETAIN_PATIENT_CHARACTERISTICS = (
        "rtn_pat_chars_opt", "113108", "Retain Patient Characteristics Option",
    )
    RETAIN_LONGITUDINAL_FULL_DATES = (
        "rtn_long_full_dates_opt", "113106", "Retain Longitudinal Temporal Information Full Dates Option",
    )
    RETAIN_LONGITUDINAL_MODIFIED_DATES = (
        "rtn_long_modif_dates_opt", "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    )
    CLEAN_DESCRIPTORS = ("clean_desc_opt", "113105", "Clean Descriptors Option")
    CLEAN_STRUCTURED_CONTENT = ("clean_struct_cont_opt", "113104", "Clean Structured Content Option")
    CLEAN_GRAPHICS = ("clean_graph_opt", "113103", "Clean Graphics Option")

    @property
    def column(self) -> str:
        return self.value[0]

    @property
    def code(self) -> str:
        return self.value[1]

    @property
    def meaning(self) -> str:
        return self.value[2]

    @classmethod
    def parse(cls, text: str) -> Option:
        """An option from its enum name (any case, ``-`` or ``_``) or its Table E.1-1 column."""
        key = text.strip().upper().replace("-", "_").replace(" ", "_")
        for option in cls:
            if key in (option.name, option.column.upper()):
                return option
        raise ValueError(text)


class DateMode(enum.Enum):
    """How dates are treated.

    ``SHIFT``: Retain Longitudinal Temporal Information with Modified Dates; every DA/DT value
    moves by the patient's date shift (the default). ``KEEP``: with Full Dates. ``REMOVE``: neither
    option; dates are removed, emptied or dummied per the Basic Profile and by VR where the table
    is silent (HIPAA Safe Harbor).
    """

    SHIFT = "shift"
    KEEP = "keep"
    REMOVE = "remove"


#: The default options. Clean Graphics is on by default (unlike a bare reading of the issue's
#: list) because without it Table E.1-1 replaces GraphicAnnotationSequence with a dummy (D),
#: destroying presentation-state graphics that research copies must keep.
DEFAULT_OPTIONS = frozenset(
    {
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        Option.CLEAN_DESCRIPTORS,
        Option.CLEAN_STRUCTURED_CONTENT,
        Option.CLEAN_GRAPHICS,
    }
)
