"""The recursive walk: every element at every depth gets exactly one action.

For each element the plan gives a code (Table E.1-1 with options, anonlib's layer, site
overrides, or a default by VR); a compound code is resolved by the attribute's Type at that
path in the instance's IOD; a plain X on an attribute the IOD requires (Type 1/2 under a kept
parent) becomes D/Z so the output stays conformant; the action's handler (a table, not an
if/elif chain) then changes the element and records the change.

Raw elements that need nothing (numbers, code strings, pixel descriptions) are never decoded.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VM
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from anonlib.dicomvalues import is_standard_code
from anonlib.engine.changes import Change
from anonlib.engine.dates import (
    AGE_CAP,
    age_in_years,
    is_over_89,
    normalize_tm,
    shift_da,
    shift_day,
    shift_dt,
)
from anonlib.engine.formats import FORMAT_VRS, REPLACEMENTS, conformant
from anonlib.engine.identifiers import retained_identifiers
from anonlib.engine.privates import PrivatePolicy
from anonlib.engine.text import Scrubber
from anonlib.engine.uids import UidMapper, structural_uid_tags
from anonlib.engine.values import TEXT_VRS, dummy_value, empty_value, fit
from anonlib.engine.vr import codec_of, element_vr, peek_strings, raw_elements
from anonlib.errors import DeidentificationError
from anonlib.profile.codes import resolve, strength
from anonlib.profile.iod import IodTypes, repeating_base
from anonlib.profile.options import DateMode, Option
from anonlib.profile.plan import Plan

__all__ = ["Walker"]

_DATE_VRS = frozenset({"DA", "DT", "TM"})
#: VRs whose kept values still need work (remapping, shifting, capping, scrubbing, recursion).
_ACTIVE_VRS = TEXT_VRS | _DATE_VRS | {"UI", "SQ", "AS"}
#: Coded values (PS3.3 Table 8.8-1) are concepts, never scrubbed ("Liver" stays when a name part
#: is spelled the same); still removed or dummied where the plan or a dummied sequence says so.
_CODE_MEANING = 0x00080104
_CODED = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080119, 0x00080120})
_BIRTH_DATE = 0x00100030
_PATIENT_AGE = 0x00101010
_BY_VR_SOURCE = "anonlib: by VR (PS3.15 E.1-1 Note 4)"
_DEFAULT_SOURCE = "not in PS3.15 E.1-1: kept and cleaned"

Trail = tuple[tuple[int, int], ...]


@dataclass
class Walker:
    """State for de-identifying one instance. Use :meth:`run` once."""

    plan: Plan
    types: IodTypes
    uids: UidMapper
    scrubber: Scrubber
    pseudonym: str
    date_shift_days: int
    private: PrivatePolicy
    over_89: bool = False
    record_values: bool = False
    record_kept: bool = False
    record_changes: bool = True  # False: ``changes`` stays empty (a caller that never reads it)
    changes: list[Change] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._retain_uids = Option.RETAIN_UIDS in self.plan.options
        self._codec: str | None = "ascii"
        self._structural = structural_uid_tags()
        self._retained = retained_identifiers(self.plan)
        self._handlers: dict[str, Callable[..., None]] = {
            "X": self._remove, "Z": self._empty, "D": self._dummy, "K": self._keep,
            "C": self._clean, "U": self._uid, "P": self._pseudonym,
        }

    # -- entry -------------------------------------------------------------------------------
    def run(self, ds: Dataset) -> None:
        self._codec = codec_of(ds)
        self._strip_repeating_groups(ds)
        self._walk(ds, (), (), dummy=False)

    # -- traversal ---------------------------------------------------------------------------
    def _walk(self, ds: Dataset, seq_path: tuple[int, ...], trail: Trail, *, dummy: bool) -> None:
        has_private = False
        for tag in list(ds.keys()):
            group, element = tag >> 16, tag & 0xFFFF
            if group in (0x0002, 0x0004) or element == 0:
                self.drop(ds, tag, trail, "X", "structural (file meta, DICOMDIR, group length)", "")
                continue
            if group % 2:
                has_private = True
                self.private.visit(self, ds, tag, seq_path, trail)
                continue
            vr = self._vr(ds, tag)
            rule = self.plan.rule_for(tag)
            if rule is not None:
                code, source = rule.code, rule.source
            elif vr == "PN" or (vr in _DATE_VRS and self.plan.date_mode is DateMode.REMOVE):
                code, source = "X/Z/D", _BY_VR_SOURCE  # _BY_VR: names and (Safe Harbor) dates
            else:
                if vr not in _ACTIVE_VRS and vr not in FORMAT_VRS and not self.record_kept:
                    continue  # fast path: nothing to do, not decoded
                code, source = "K", _DEFAULT_SOURCE
            self._decide(ds, tag, vr, code, source, seq_path, trail, dummy)
        if has_private:
            self.private.finish(self, ds, trail)

    def _decide(self, ds: Dataset, tag: int, vr: str, code: str, source: str,
                seq_path: tuple[int, ...], trail: Trail, dummy: bool) -> None:
        type_ = self.types.type_of(seq_path + (tag,)) if ("/" in code or code == "X") else None
        action = resolve(code, type_)
        note = ""
        if action == "X" and strength(type_) < 3:
            action = "Z" if strength(type_) == 2 else ("U" if vr == "UI" else "D")
            note = f"kept: Type {type_} in {self.types.iod}"
        if dummy and action in ("K", "C") and (  # dates follow the date option, as everywhere
                vr in TEXT_VRS or (vr in _DATE_VRS and self.plan.date_mode is DateMode.REMOVE)):
            action, note = "D", "inside a dummied sequence"
        self._apply(action, ds, tag, vr, code, source, type_, seq_path, trail, dummy, note)

    def _apply(self, action: str, ds: Dataset, tag: int, vr: str | None, code: str, source: str,
               type_: str | None, seq_path: tuple[int, ...], trail: Trail, dummy: bool,
               note: str = "") -> None:
        handler = self._handlers.get(action)
        if handler is None:
            raise DeidentificationError(f"no handler for action {action!r}")
        ctx = _Site(ds, tag, vr or self._vr(ds, tag), code, source, type_, seq_path, trail, dummy, note)
        handler(ctx)

    def drop(self, ds: Dataset, tag: int, trail: Trail, code: str, source: str, note: str) -> None:
        """Remove an element without decoding it (private and structural elements)."""
        vr = getattr(raw_elements(ds).get(tag), "VR", None) or "UN"
        before = None
        if self.record_values:
            before = self._before(_Site(ds, tag, vr, code, source, None, (), trail, False))
        del ds[tag]
        if self.record_changes:
            self.changes.append(Change(trail, tag, str(vr), code, "X", "removed", source, None, note, before))

    def walk_item(self, item: Dataset, ctx: _Site, index: int, *, dummy: bool) -> None:
        self._walk(item, ctx.seq_path + (ctx.tag,), ctx.trail + ((ctx.tag, index),), dummy=dummy)

    # -- handlers ----------------------------------------------------------------------------
    def _remove(self, s: _Site) -> None:
        before = self._before(s)
        del s.ds[s.tag]
        self._record(s, "X", "removed", before, None)

    def _empty(self, s: _Site) -> None:
        element = s.ds[s.tag]
        before = self._before(s)
        element.value = empty_value(element.VR)
        self._record(s, "Z", "emptied", before, "")

    def _dummy(self, s: _Site) -> None:
        element = s.ds[s.tag]
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                self.walk_item(item, s, index, dummy=True)
            self._record(s, "D", "dummy", None, None)
            return
        if element.VR == "UI":
            self._uid(s)
            return
        before = self._before(s)
        element.value = dummy_value(element.VR)
        self._record(s, "D", "dummy", before, str(element.value))

    def _keep(self, s: _Site) -> None:
        self._retain(s, clean=False)

    def _clean(self, s: _Site) -> None:
        self._retain(s, clean=True)

    def _retain(self, s: _Site, *, clean: bool) -> None:
        vr = s.vr
        letter = "C" if clean else "K"
        if vr == "SQ":
            for index, item in enumerate(s.ds[s.tag].value or []):
                self.walk_item(item, s, index, dummy=s.dummy)
            return
        if vr == "UI":
            if not self._retain_uids and s.tag not in self._structural:
                self._uid(s, action=letter)
            else:
                self._record_kept(s, letter)
            return
        if s.tag == _BIRTH_DATE and self.over_89:
            s.note = "age over 89: birth date emptied (HIPAA 164.514(b)(2)(i)(C))"
            self._empty(s)
            return
        if vr in ("DA", "DT"):
            self._date(s, letter)
        elif vr == "TM":
            self._time(s, letter)
        elif vr == "AS":
            self._age(s, letter)
        elif vr == "AE" and clean:
            before = self._before(s)
            s.ds[s.tag].value = dummy_value("AE")
            self._record(s, "C", "dummy", before, dummy_value("AE"))
        elif s.tag == _CODE_MEANING and not is_standard_code(s.ds):
            # a private or local code's meaning is a site's own text: known values only
            self._map_values(s, lambda v: fit(self.scrubber.known(v), vr), letter, "cleaned")
        elif s.tag in _CODED or (not clean and s.tag in self._retained):
            self._record_kept(s, letter)  # codes; identifying attributes kept on purpose
        elif vr in TEXT_VRS:
            scrub = self.scrubber.clean if (clean or vr in ("LT", "ST", "UT")) else self.scrubber.known
            self._map_values(s, lambda v: fit(scrub(v), vr), letter, "cleaned")
        elif vr in FORMAT_VRS and not conformant(vr, self._values(s)):
            self._replace_malformed(s)
        else:
            self._record_kept(s, letter)

    def _uid(self, s: _Site, action: str = "U") -> None:
        if s.vr == "SQ":  # defensive: U on a sequence means its UIDs
            self._retain(s, clean=False)
            return
        values = self._values(s)
        if len(values) > 1 and _single_valued(s.tag):
            # "..\\..\\windows" in a VM 1 UID: one malformed value, mapped as one (never a VM 3
            # UID that no study lookup finds); the same input always gives the same UID.
            before = self._before(s) if self.record_values else None
            s.ds[s.tag] = DataElement(s.tag, "UI", self.uids("\\".join(values)))
            s.note = "several values in a single-valued UID: mapped as one"
            self._record(s, action, "uid", before, str(s.ds[s.tag].value))
            return
        self._map_values(s, self.uids, action, "uid")

    def _pseudonym(self, s: _Site) -> None:
        element = s.ds[s.tag]
        before = self._before(s)
        element.value = fit(self.pseudonym, element.VR)
        self._record(s, "P", "pseudonym", before, self.pseudonym)

    # -- value helpers -----------------------------------------------------------------------
    def _values(self, s: _Site) -> list[str]:
        """The element's values as strings, decoded without converting it when possible."""
        peeked = peek_strings(s.ds, s.tag, s.vr, self._codec)
        return peeked if peeked is not None else _as_list(s.ds[s.tag].value)

    def _assign(self, s: _Site, values: list[str]) -> None:
        s.ds[s.tag].value = values if len(values) > 1 else (values[0] if values else "")

    def _date(self, s: _Site, letter: str) -> None:
        if self.plan.date_mode is not DateMode.SHIFT:
            self._record_kept(s, letter)
            return
        shift = shift_da if s.vr == "DA" else shift_dt
        values = self._values(s)
        if not values:
            return
        moved = [shift(v, self.date_shift_days) for v in values]
        if any(m is None for m in moved):
            s.note = "invalid date value replaced"
            self._replace_invalid(s)
            return
        before = self._before(s)
        self._assign(s, [m for m in moved if m is not None])
        self._record(s, letter, "shifted", before, self._before(s))

    def _time(self, s: _Site, letter: str) -> None:
        """Times of day are kept (a whole-day shift leaves them unchanged), in standard form."""
        values = self._values(s)
        normal = [normalize_tm(v) for v in values]
        if any(n is None for n in normal):
            s.note = "invalid time value replaced"
            self._replace_invalid(s)
        elif normal != values:
            before = self._before(s)
            self._assign(s, [n for n in normal if n is not None])
            self._record(s, letter, "replaced", before, self._before(s))
        else:
            self._record_kept(s, letter)

    def _replace_invalid(self, s: _Site) -> None:
        if strength(self.types.type_of(s.seq_path + (s.tag,))) == 1:
            self._dummy(s)
        else:
            self._empty(s)

    def _replace_malformed(self, s: _Site) -> None:
        """A CS, IS or DS value not of its VR's form (:mod:`anonlib.engine.formats`): a dummy
        for a Type 1 attribute, else emptied — set without decoding the old value (pydicom
        cannot convert ``../../etc`` to an IS)."""
        before = "\\".join(self._values(s)) if self.record_values else None
        type_1 = strength(self.types.type_of(s.seq_path + (s.tag,))) == 1
        value = REPLACEMENTS.get(s.tag, dummy_value(s.vr)) if type_1 else empty_value(s.vr)
        s.ds[s.tag] = DataElement(s.tag, s.vr, value)
        s.note = f"value not a valid {s.vr}: {'dummy' if type_1 else 'emptied'}"
        self._record(s, "D" if type_1 else "Z", "dummy" if type_1 else "emptied", before,
                     "" if value is None else str(value))

    def _age(self, s: _Site, letter: str) -> None:
        values = self._values(s)
        capped = [AGE_CAP if is_over_89(age_in_years(v)) else v for v in values]
        if capped != values or (s.tag == _PATIENT_AGE and self.over_89 and values):
            before = self._before(s)
            self._assign(s, capped)
            s.note = "age over 89 capped at 90 (HIPAA 164.514(b)(2)(i)(C))"
            self._record(s, letter, "capped", before, self._before(s))
        else:
            self._record_kept(s, letter)

    def _map_values(self, s: _Site, fn: Callable[[str], str], letter: str, outcome: str) -> None:
        values = self._values(s)
        new = [fn(v) for v in values]
        if new == values:
            self._record_kept(s, letter)
            return
        before = self._before(s)
        self._assign(s, new)
        self._record(s, letter, outcome, before, self._before(s))

    def shift_date(self, day: _dt.date) -> str:
        """A date found in text, moved by the patient's shift (or redacted / kept per mode)."""
        if self.plan.date_mode is DateMode.KEEP:
            return day.strftime("%Y%m%d")
        if self.plan.date_mode is DateMode.REMOVE:
            return "[DATE]"
        moved = shift_day(day, self.date_shift_days)
        return moved.strftime("%Y%m%d") if moved is not None else "[DATE]"

    # -- bookkeeping -------------------------------------------------------------------------
    def _before(self, s: _Site) -> str | None:
        if not self.record_values or s.tag not in s.ds:
            return None
        element = s.ds[s.tag]
        if element.VR == "SQ":
            return f"<{len(element.value or [])} item(s)>"
        if element.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            return f"<{len(element.value or b'')} bytes>"
        return str(element.value)

    def _record(self, s: _Site, action: str, outcome: str, before: str | None,
                after: str | None) -> None:
        if not self.record_changes:
            return
        self.changes.append(Change(
            trail=s.trail, tag=s.tag, vr=s.vr, code=s.code, action=action,
            outcome=outcome, source=s.source, iod_type=s.type_, note=s.note,
            before=before if self.record_values else None,
            after=after if self.record_values else None,
        ))

    def _record_kept(self, s: _Site, letter: str) -> None:
        """Record an element left as it was, when the caller asked for kept elements too."""
        if self.record_kept:
            before = self._before(s)
            self._record(s, letter, "kept", before, before)

    def _vr(self, ds: Dataset, tag: int) -> str:
        return element_vr(ds, tag)

    def _strip_repeating_groups(self, ds: Dataset) -> None:
        """Overlays (60xx) and curves (50xx) go as whole groups unless kept (K) on purpose: a
        bitmap cannot be cleaned of burned-in text automatically, and removing OverlayData alone
        leaves an invalid overlay (required_type12.md B)."""
        for first, element in ((0x6000, 0x3000), (0x5000, None)):
            rule = self.plan.rule_for((first << 16) | (element or 0x3000))
            if rule is not None and rule.code == "K":
                continue
            doomed = [t for t in ds.keys() if repeating_base(t >> 16) == first]
            for tag in doomed:
                site = _Site(ds, tag, self._vr(ds, tag), rule.code if rule else "X",
                             rule.source if rule else "", None, (), (), False,
                             "overlay/curve group removed whole")
                self._remove(site)


@dataclass
class _Site:
    """Where the walk stands: the element and everything needed to record a change."""

    ds: Dataset
    tag: int
    vr: str
    code: str
    source: str
    type_: str | None
    seq_path: tuple[int, ...]
    trail: Trail
    dummy: bool
    note: str = ""


def _single_valued(tag: int) -> bool:
    try:
        return dictionary_VM(tag) == "1"
    except KeyError:
        return False


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)) and not isinstance(value, Sequence):
        return [str(v) for v in value]
    return [str(value)]
