"""Profiles: PS3.15 Table E.1-1 as data, options, site overrides, merged into a frozen Plan."""

from anonlib.profile.options import DEFAULT_OPTIONS, DateMode, Option
from anonlib.profile.plan import Plan, Rule, build_plan
from anonlib.profile.site import MaskRule, SiteProfile, load_site_profile, parse_site_profile

__all__ = [
    "DEFAULT_OPTIONS", "DateMode", "Option", "Plan", "Rule", "build_plan",
    "MaskRule", "SiteProfile", "load_site_profile", "parse_site_profile",
]
