"""Who may C-STORE into intake: ``ANONLIB_ALLOWED_SENDERS`` parsed into (AE title, host) pairs,
and the Orthanc modalities that declare them.

Orthanc enforces everything at association: an AET not declared is rejected, and with
``DicomCheckModalityHost`` a declared AET calling from another address than its modality's is
rejected too. Orthanc 1.10.1 looks up only the *first* modality of an AE title, so each allowed
host needs its own AE title (the usual PACS practice): ``HOST`` alone (one sender, AE title
``ANONLIB_SCU``) or ``AET@HOST,AET@HOST,...``. No filter sees the instances themselves."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from anonlib.errors import ConfigError

__all__ = ["DEFAULT_AET", "Sender", "modality", "parse_senders", "sender_modalities"]

DEFAULT_AET = "ANONLIB_SCU"
_VARIABLE = "ANONLIB_ALLOWED_SENDERS"
# an AE title: 1-16 printable ASCII characters; no backslash (DICOM), no space, ',' or '@' (our syntax)
_AET = re.compile(r"[!-~]{1,16}")
_NOT_IN_AET = set("\\,@")


@dataclass(frozen=True)
class Sender:
    """One allowed sender: the AE title it calls with and the IPv4 address intake sees it from."""

    aet: str
    host: str

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}"


def _host(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{_VARIABLE}: {text!r} is not an IP address (Orthanc compares the "
                          "caller's address as text: a host name would never match)") from None
    if address.version != 4:
        raise ConfigError(f"{_VARIABLE}: {text!r} is an IPv6 address; intake's DICOM port takes IPv4 only")
    return str(address)


def _aet(text: str) -> str:
    if not _AET.fullmatch(text) or _NOT_IN_AET & set(text):
        raise ConfigError(f"{_VARIABLE}: {text!r} is not an AE title (1-16 characters, no space, "
                          "backslash, ',' or '@')")
    return text


def parse_senders(raw: str, default: str = "127.0.0.1") -> tuple[Sender, ...]:
    """``HOST`` (one sender, AE title ``ANONLIB_SCU``) or ``AET@HOST`` pairs separated by commas
    or spaces. Several hosts without AE titles, a repeated AE title (compared without regard to
    case, as Orthanc does) or a host name raise :class:`ConfigError` with one line saying why."""
    items = raw.replace(",", " ").split() if raw.strip() else default.split()
    if not items:
        raise ConfigError(f"{_VARIABLE} names no sender (default {default})")
    bare = [item for item in items if "@" not in item]
    if bare and len(items) > 1:
        raise ConfigError(
            f"{_VARIABLE}: several senders need an AE title each, as AET@HOST (e.g. "
            f"CT_1@10.0.0.5,MR_1@10.0.0.6), not {', '.join(repr(b) for b in bare)}: Orthanc 1.10.1 "
            "checks only one host per AE title")
    if bare:
        return (Sender(DEFAULT_AET, _host(bare[0])),)
    senders: dict[str, Sender] = {}
    for item in items:
        aet, _, host = item.rpartition("@")
        sender = Sender(_aet(aet), _host(host))
        seen = senders.get(sender.aet.upper())
        if seen is not None and seen != sender:
            raise ConfigError(f"{_VARIABLE}: AE title {sender.aet!r} is given twice ({seen}, {sender}): "
                              "Orthanc 1.10.1 checks only one host per AE title; give each host its own")
        senders[sender.aet.upper()] = sender
    return tuple(senders.values())


def sender_modalities(senders: tuple[Sender, ...], port: int = 104) -> dict[str, dict[str, object]]:
    """Orthanc ``DicomModalities`` declaring each sender: C-STORE and C-ECHO only (Orthanc allows
    C-FIND, C-GET, C-MOVE and storage commitment to a declared modality unless told not to).
    One sender is named ``sender``; several ``sender-1``, ``sender-2``, ... The port is never
    used (intake sends nothing to its senders)."""
    names = ["sender"] if len(senders) == 1 else [f"sender-{i}" for i in range(1, len(senders) + 1)]
    return {name: modality(s.aet, s.host, port, store=True) for name, s in zip(names, senders)}


def modality(aet: str, host: str, port: int, *, store: bool) -> dict[str, object]:
    """A declared modality that may C-STORE (and C-ECHO) into the node (``store``) and nothing
    else: no C-FIND, C-GET, C-MOVE, worklist or storage commitment. Outgoing transfers to it
    are not affected."""
    return {"AET": aet, "Host": host, "Port": port, "AllowEcho": store, "AllowStore": store,
            "AllowFind": False, "AllowFindWorklist": False, "AllowGet": False, "AllowMove": False,
            "AllowStorageCommitment": False}
