"""Site profiles: a YAML file layered on top of the standard table and options.

Example (every key optional)::

    name: radiology-research
    options: [retain_longitudinal_modified_dates, clean_descriptors, clean_structured_content,
              clean_graphics, retain_device_identity]
    dates: shift                 # shift | keep | remove  (sets the longitudinal option)
    date_shift_days: [-3652, -366]
    pseudonym_prefix: RAD
    uid_root: "2.25"             # or your organisation's registered root
    actions: {"(0018,1030)": C, BodyPartExamined: K}
    keep: [SeriesDescription]    # shorthand for action K
    remove: [ProtocolName]       # shorthand for action X
    private_keep:                # kept under Retain Safe Private (in addition to PS3.15 E.3.10-1)
      - "ACME 1.0:(0019,xx10)"
    burned_in: ocr               # ocr | quarantine | allow, or a mapping (anonlib.profile.burned_in)
    pixel_masks:
      - {manufacturer: ACME, model: "US 9.*", rows: 480, columns: 640, regions: [[0, 0, 640, 40]]}
    limits: {max_depth: 32, max_text_bytes: 1 MiB}   # what one instance may be (anonlib.profile.limits)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from anonlib.errors import ConfigError
from anonlib.profile.burned_in import BurnedInPolicy, parse_burned_in
from anonlib.profile.codes import check_code
from anonlib.profile.limits import Limits, parse_limits
from anonlib.profile.options import DEFAULT_OPTIONS, Option

__all__ = ["SiteProfile", "MaskRule", "load_site_profile", "parse_tag"]

_TAG = re.compile(r"^\(?\s*(?:0x)?([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")
_PRIVATE = re.compile(r"^(.+):\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)$")
_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def parse_tag(text: str | int) -> int:
    """A tag from ``(gggg,eeee)``, ``ggggeeee``, an int or a keyword; ConfigError otherwise."""
    if isinstance(text, int):
        return text
    match = _TAG.match(text.strip())
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = tag_for_keyword(text.strip())
    if tag is None:
        raise ConfigError(f"unknown attribute {text!r} (use a keyword or (gggg,eeee))")
    return int(tag)


@dataclass(frozen=True)
class MaskRule:
    """Regions to blank in the pixels of matching instances: (x, y, width, height) rectangles."""

    manufacturer: str
    model: str  # a regular expression matched against ManufacturerModelName
    rows: int
    columns: int
    regions: tuple[tuple[int, int, int, int], ...]

    def matches(self, manufacturer: str, model: str, rows: int, columns: int) -> bool:
        return (
            manufacturer.strip().lower() == self.manufacturer.strip().lower()
            and re.fullmatch(self.model, model.strip()) is not None
            and (rows, columns) == (self.rows, self.columns)
        )

    def key(self) -> str:
        return f"{self.manufacturer}|{self.model}|{self.rows}x{self.columns}|{self.regions}"


@dataclass(frozen=True)
class SiteProfile:
    """A parsed site profile. ``options`` None means the defaults."""

    name: str = "default"
    options: frozenset[Option] | None = None
    actions: dict[int, str] = field(default_factory=dict)
    private_keep: tuple[tuple[str, int, int], ...] = ()
    date_shift_days: tuple[int, int] = (-3652, -366)
    pseudonym_prefix: str = "ANON"
    uid_root: str = "2.25"
    burned_in: BurnedInPolicy = field(default_factory=BurnedInPolicy)
    masks: tuple[MaskRule, ...] = ()
    limits: Limits = field(default_factory=Limits)


def _options(raw: Any, dates: str | None) -> frozenset[Option] | None:
    chosen: set[Option] | None = None
    if raw is not None:
        try:
            chosen = {Option.parse(str(item)) for item in raw}
        except ValueError as exc:
            raise ConfigError(f"unknown option {exc} (known: {[o.name.lower() for o in Option]})") from exc
    if dates is not None:
        chosen = set(DEFAULT_OPTIONS) if chosen is None else chosen
        chosen -= {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        extra = {"shift": Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
                 "keep": Option.RETAIN_LONGITUDINAL_FULL_DATES, "remove": None}
        if dates not in extra:
            raise ConfigError(f"dates must be shift, keep or remove, not {dates!r}")
        if extra[dates] is not None:
            chosen.add(extra[dates])  # type: ignore[arg-type]
    return None if chosen is None else frozenset(chosen)


def _private_keep(raw: Any) -> tuple[tuple[str, int, int], ...]:
    out = []
    for item in raw or []:
        match = _PRIVATE.match(str(item).strip())
        if not match:
            raise ConfigError(f"private_keep entry {item!r} must look like 'CREATOR:(gggg,xxee)'")
        creator, group, element = match.groups()
        if int(group, 16) % 2 == 0:
            raise ConfigError(f"private_keep entry {item!r}: private groups are odd")
        out.append((creator.strip(), int(group, 16), int(element, 16)))
    return tuple(out)


def _masks(raw: Any) -> tuple[MaskRule, ...]:
    masks = []
    for index, item in enumerate(raw or []):
        try:
            regions = tuple(tuple(int(v) for v in region) for region in item["regions"])
            if any(len(region) != 4 or region[2] <= 0 or region[3] <= 0 for region in regions):
                raise ValueError("each region is [x, y, width, height] with a positive size")
            re.compile(str(item.get("model", ".*")))
            masks.append(MaskRule(str(item["manufacturer"]), str(item.get("model", ".*")),
                                  int(item["rows"]), int(item["columns"]), regions))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise ConfigError(f"pixel_masks[{index}]: {exc}") from exc
    return tuple(masks)


def parse_site_profile(data: dict[str, Any], where: str = "profile") -> SiteProfile:
    """A :class:`SiteProfile` from already-parsed YAML data."""
    known = {"name", "options", "dates", "date_shift_days", "pseudonym_prefix", "uid_root",
             "actions", "keep", "remove", "private_keep", "burned_in", "pixel_masks", "limits"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    actions = {parse_tag(k): check_code(str(v), where) for k, v in (data.get("actions") or {}).items()}
    actions.update({parse_tag(k): "K" for k in data.get("keep") or []})
    actions.update({parse_tag(k): "X" for k in data.get("remove") or []})
    shift = tuple(int(v) for v in data.get("date_shift_days", (-3652, -366)))
    if len(shift) != 2 or shift[0] > shift[1] or shift == (0, 0):
        raise ConfigError(f"{where}: date_shift_days must be [min, max] with min <= max, not only 0")
    root = str(data.get("uid_root", "2.25"))
    if not _UID_ROOT.match(root) or len(root) > 40:
        raise ConfigError(f"{where}: uid_root {root!r} is not a valid UID root of at most 40 characters")
    burned = parse_burned_in(data.get("burned_in"), where)
    prefix = str(data.get("pseudonym_prefix", "ANON"))
    if not re.fullmatch(r"[A-Z0-9_]{1,16}", prefix):
        raise ConfigError(f"{where}: pseudonym_prefix must be 1-16 of A-Z, 0-9, _")
    return SiteProfile(
        name=str(data.get("name", "site")),
        options=_options(data.get("options"), data.get("dates")),
        actions=actions,
        private_keep=_private_keep(data.get("private_keep")),
        date_shift_days=(shift[0], shift[1]),
        pseudonym_prefix=prefix,
        uid_root=root,
        burned_in=burned,
        masks=_masks(data.get("pixel_masks")),
        limits=parse_limits(data.get("limits"), where),
    )


def load_site_profile(path: Path) -> SiteProfile:
    """Read and validate a site profile YAML file."""
    import yaml  # here: a run without a profile does not import PyYAML (issue 12)

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read profile: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile is a YAML mapping")
    return parse_site_profile(data, where=str(path))
