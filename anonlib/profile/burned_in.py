"""The profile's ``burned_in:`` section: what happens to text burned into the pixels.

Two spellings::

    burned_in: ocr              # ocr | quarantine | allow

    burned_in:
      mode: ocr                 # ocr (default): read the pixels, mask the text found
                                # quarantine: quarantine every instance at risk, unread
                                # allow: trust the data (not recommended)
      engine: rapidocr          # rapidocr (default) | tesseract
      mask: all                 # all (default): every text box found | phi: only text that
                                # matches the patient's header values or date/ID/phone patterns
      allow_tokens: [kV, mAs]   # with mask: phi — technical tokens never masked (added to the
                                # built-in list: L, R, HFS, FFS, kV, mAs, mm, cm, …)
      sample_min_series: 20     # cross-sectional series (CT/MR/PT/NM…) with more images than
                                # this are sampled (first, middle, last, odd ones out); smaller
                                # ones are read in full
      every_frame: false        # multi-frame images: read the first, middle and last frame, and
                                # every frame once text is found in them (default); true: every
                                # frame always (slow on long clips)

Which instances are read is data (``anonlib/data/burned_in.yaml``), see
:mod:`anonlib.pixels.select`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anonlib.errors import ConfigError

__all__ = ["BurnedInPolicy", "parse_burned_in", "MODES", "ENGINES", "DEFAULT_ENGINE"]

MODES = ("ocr", "quarantine", "allow")
ENGINES = ("rapidocr", "tesseract")
#: Chosen from bench/burnedin.py (README, "Burned-in text"): the highest recall on our set.
DEFAULT_ENGINE = "rapidocr"


@dataclass(frozen=True)
class BurnedInPolicy:
    """The parsed ``burned_in:`` section (defaults: read every image at risk, mask all text)."""

    mode: str = "ocr"
    engine: str = DEFAULT_ENGINE
    mask: str = "all"
    allow_tokens: tuple[str, ...] = ()
    sample_min_series: int = 20
    every_frame: bool = False

    @property
    def reads_pixels(self) -> bool:
        return self.mode == "ocr"

    def key(self) -> dict[str, Any]:
        """What changes the output (the plan's fingerprint)."""
        return {"mode": self.mode, "mask": self.mask, "allow": sorted(self.allow_tokens),
                "sample": self.sample_min_series, "every_frame": self.every_frame}


def parse_burned_in(raw: Any, where: str = "profile") -> BurnedInPolicy:
    """A :class:`BurnedInPolicy` from the YAML value; ConfigError naming the key otherwise."""
    if raw is None:
        return BurnedInPolicy()
    if isinstance(raw, str):
        raw = {"mode": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: burned_in must be one of {list(MODES)} or a mapping")
    unknown = set(raw) - {"mode", "engine", "mask", "allow_tokens", "sample_min_series", "every_frame"}
    if unknown:
        raise ConfigError(f"{where}: burned_in: unknown keys {sorted(unknown)}")
    mode = str(raw.get("mode", "ocr"))
    if mode not in MODES:
        raise ConfigError(f"{where}: burned_in mode must be one of {list(MODES)}, not {mode!r}")
    engine = str(raw.get("engine", DEFAULT_ENGINE))
    if engine not in ENGINES:
        raise ConfigError(f"{where}: burned_in engine must be one of {list(ENGINES)}, not {engine!r}")
    mask = str(raw.get("mask", "all"))
    if mask not in ("all", "phi"):
        raise ConfigError(f"{where}: burned_in mask must be all or phi, not {mask!r}")
    tokens = raw.get("allow_tokens") or []
    if not isinstance(tokens, list) or not all(isinstance(t, (str, int, float)) for t in tokens):
        raise ConfigError(f"{where}: burned_in allow_tokens must be a list of words")
    try:
        sample = int(raw.get("sample_min_series", 20))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: burned_in sample_min_series must be a whole number") from exc
    if sample < 3:
        raise ConfigError(f"{where}: burned_in sample_min_series must be at least 3")
    every_frame = raw.get("every_frame", False)
    if not isinstance(every_frame, bool):
        raise ConfigError(f"{where}: burned_in every_frame must be true or false")
    return BurnedInPolicy(mode, engine, mask, tuple(str(t) for t in tokens), sample, every_frame)
