"""Deterministic, keyed UID remapping.

The same original UID maps to the same new UID in every run, process and machine that shares
the project secret, so references between objects (and to objects outside the set) resolve
exactly as before. New UIDs are ``2.25.<UUIDv8 as an integer>`` (or ``<root>.<digits>`` for a
configured organisation root): at most 64 characters, never embedding or extending the original.
Standard and registry UIDs (SOP classes, transfer syntaxes, coding schemes) are never remapped.
"""

from __future__ import annotations

import hashlib
import hmac

from anonlib.dicomvalues import is_kept_uid, is_registry_uid, structural_uid_tags

__all__ = ["UidMapper", "is_registry_uid", "is_kept_uid", "structural_uid_tags"]

class UidMapper:
    """Maps original UIDs to new ones under a secret; memoised per instance of the mapper."""

    def __init__(self, secret: bytes, root: str = "2.25") -> None:
        if len(secret) < 16:
            raise ValueError("the UID secret must be at least 16 bytes")
        self._secret = secret
        self._root = root.rstrip(".")
        self._cache: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        """The new UID for ``uid`` (``uid`` itself when it is empty or a registry UID)."""
        clean = uid.strip(" \x00")
        if not clean or is_registry_uid(clean):
            return clean
        new = self._cache.get(clean)
        if new is None:
            new = self._derive(clean)
            self._cache[clean] = new
        return new

    def mapped(self) -> dict[str, str]:
        """Every UID this mapper replaced so far, original -> new (registry UIDs, which it
        keeps, are not in it): what the lookup store records for re-identification."""
        return dict(self._cache)

    def _derive(self, uid: str) -> str:
        for attempt in range(16):
            message = uid.encode("ascii", "replace") + (b"#%d" % attempt if attempt else b"")
            digest = hmac.new(self._secret, message, hashlib.sha256).digest()
            if self._root == "2.25":
                number = int.from_bytes(digest[:16], "big")
                number = (number & ~(0xF << 76)) | (0x8 << 76)  # UUID version 8
                number = (number & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
                new = f"2.25.{number}"
            else:
                room = 64 - len(self._root) - 1
                new = f"{self._root}.{int.from_bytes(digest, 'big') % (10 ** room)}"
            extends = new.startswith(uid + ".") or new == uid
            embeds = len(uid) >= 10 and uid in new  # a short string is in any long number
            if not (extends or embeds):
                return new
        raise RuntimeError("could not derive a UID that does not embed the original")  # pragma: no cover
