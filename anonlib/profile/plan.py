"""The de-identification plan: PS3.15 table + options + anonlib's layer + site overrides.

One small pure function, :func:`build_plan`, merges the layers (later wins) into a frozen
:class:`Plan`. Everything the engine needs to decide an element's fate is in the plan; an unknown
action code or an impossible combination fails here, before any instance is touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from anonlib.data import read_yaml
from anonlib.dicomio.limits import Limits
from anonlib.errors import ConfigError
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.profile.codes import check_code
from anonlib.profile.iod import repeating_base
from anonlib.profile.options import DEFAULT_OPTIONS, DateMode, Option
from anonlib.profile.site import MaskRule, SiteProfile, parse_tag
from anonlib.profile.table import edition, load_table

__all__ = ["Rule", "Plan", "build_plan", "date_mode_of"]


@dataclass(frozen=True)
class Rule:
    """What to do with an attribute and which layer decided it (for the change record)."""

    code: str
    source: str


@dataclass(frozen=True)
class Plan:
    """Everything the engine needs; immutable and hashable into a fingerprint."""

    name: str
    options: frozenset[Option]
    date_mode: DateMode
    rules: Mapping[int, Rule]
    repeating: Mapping[tuple[int, int | None], Rule]  # (first group, element or None)
    private: Rule
    private_keep: frozenset[tuple[str, int, int]]  # (creator, group, element offset)
    uid_root: str = "2.25"
    burned_in: BurnedInPolicy = field(default_factory=BurnedInPolicy)
    masks: tuple[MaskRule, ...] = ()
    burned_in_sop_classes: frozenset[str] = frozenset()
    burned_in_modalities: frozenset[str] = frozenset()
    #: Modalities read by sampling when their series are large (burned_in.yaml).
    sampled_modalities: frozenset[str] = frozenset()
    #: Modalities whose pixels are computed data, never read by OCR (burned_in.yaml).
    unread_modalities: frozenset[str] = frozenset()
    #: ImageType values that make an image read whatever its modality (burned_in.yaml).
    at_risk_image_types: frozenset[str] = frozenset()
    table_edition: str = ""
    #: What one instance may be (sequence depth, value and instance sizes): beyond, it is rejected.
    limits: Limits = field(default_factory=Limits)
    fingerprint: str = field(default="", compare=False)

    def rule_for(self, tag: int) -> Rule | None:
        """The rule for a public attribute (exact tags, then the 50xx/60xx patterns)."""
        rule = self.rules.get(tag)
        if rule is not None:
            return rule
        first = repeating_base(tag >> 16)
        if first is not None:
            return self.repeating.get((first, tag & 0xFFFF)) or self.repeating.get((first, None))
        return None


def date_mode_of(options: Iterable[Option]) -> DateMode:
    """The date mode the longitudinal options select; both at once is an error."""
    chosen = set(options)
    full = Option.RETAIN_LONGITUDINAL_FULL_DATES in chosen
    modified = Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in chosen
    if full and modified:
        raise ConfigError("the Full Dates and Modified Dates options exclude each other")
    return DateMode.KEEP if full else DateMode.SHIFT if modified else DateMode.REMOVE


def _table_code(basic: str, options: tuple[tuple[str, str], ...], chosen: frozenset[str]) -> tuple[str, str]:
    """The code a row gives under the chosen option columns. An option's entry overrides the
    Basic Profile (E.1.1); where two chosen options disagree, C (clean) beats K (keep) — the more
    protective reading, which is also what the date options need over Retain Device Identity."""
    hits = [(column, code) for column, code in options if column in chosen]
    if not hits:
        return basic, "PS3.15 E.1-1 Basic Profile"
    hits.sort(key=lambda hit: 0 if hit[1] == "C" else 1)
    column, code = hits[0]
    return code, f"PS3.15 E.1-1 {Option.parse(column).meaning}"


def build_plan(site: SiteProfile | None = None) -> Plan:
    """Merge Table E.1-1, the options, anonlib's own layer and ``site`` into a :class:`Plan`."""
    site = site or SiteProfile()
    options = frozenset(site.options if site.options is not None else DEFAULT_OPTIONS)
    date_mode = date_mode_of(options)
    columns = frozenset(option.column for option in options)

    rules: dict[int, Rule] = {}
    repeating: dict[tuple[int, int | None], Rule] = {}
    private = Rule("X", "PS3.15 E.1-1 Basic Profile")
    for row in load_table():
        code, source = _table_code(row.basic, row.options, columns)
        rule = Rule(code, source)
        if row.kind == "tag" and row.tag is not None:
            rules[row.tag] = rule
        elif row.kind == "repeating" and row.group is not None:
            repeating[(row.group, row.element)] = rule
        else:
            private = rule

    for key, code in read_yaml("anonlib_rules.yaml")["actions"].items():
        rules[parse_tag(key)] = Rule(check_code(code, "anonlib_rules.yaml"), "anonlib default")
    for tag, code in site.actions.items():
        rules[tag] = Rule(code, f"site profile {site.name!r}")

    burned = read_yaml("burned_in.yaml")
    plan = Plan(
        name=site.name,
        options=options,
        date_mode=date_mode,
        rules=rules,
        repeating=repeating,
        private=private,
        private_keep=frozenset(site.private_keep),
        uid_root=site.uid_root,
        burned_in=site.burned_in,
        masks=tuple(site.masks),
        burned_in_sop_classes=frozenset(str(uid) for uid in burned["sop_classes"]),
        burned_in_modalities=frozenset(burned["modalities"]),
        sampled_modalities=frozenset(burned["sampled_modalities"]),
        at_risk_image_types=frozenset(burned["image_types"]),
        unread_modalities=frozenset(burned["not_read_modalities"]),
        table_edition=edition(),
        limits=site.limits,
    )
    return _with_fingerprint(plan)


def _with_fingerprint(plan: Plan) -> Plan:
    canonical = {
        "name": plan.name,
        "options": sorted(option.name for option in plan.options),
        "date_mode": plan.date_mode.value,
        "rules": sorted((tag, rule.code) for tag, rule in plan.rules.items()),
        "repeating": sorted((f"{k[0]}:{k[1]}", r.code) for k, r in plan.repeating.items()),
        "private": plan.private.code,
        "private_keep": sorted(plan.private_keep),
        "uid_root": plan.uid_root,
        "burned_in": plan.burned_in.key(),
        "masks": [mask.key() for mask in plan.masks],
        "edition": plan.table_edition,
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    object.__setattr__(plan, "fingerprint", digest[:16])
    return plan
