"""The address each node's DICOM port listens on (``ANONLIB_DICOM_LISTEN``, default 127.0.0.1).

Orthanc 1.10.1 has no option for it: its DICOM server binds the wildcard address. ``constellation
up`` starts Orthanc with anonlib's bind shim (``env/bindshim/bindshim.c``, built by
``env/bindshim/build``) in ``LD_PRELOAD``, which rewrites the wildcard bind of the DICOM port to
the chosen address; REST is left alone (``RemoteAccessAllowed`` covers it). ``0.0.0.0`` (or
``::``) means every address, without the shim. Fails closed: a shim that cannot be built stops
``up``, and a node found listening on the wildcard address anyway is stopped
(:func:`listening_addresses` reads ``/proc/net/tcp*``).
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from anonlib.errors import ConfigError

__all__ = ["EVERY_ADDRESS", "SHIM_NAME", "build_shim", "listening_addresses", "parse_listen", "shim_env"]

EVERY_ADDRESS = ("0.0.0.0", "::")
SHIM_NAME = "libanonlib_bindshim.so"
_LISTEN_STATE = "0A"


def parse_listen(raw: str) -> str | None:
    """``ANONLIB_DICOM_LISTEN``: an IP address (default ``127.0.0.1``), or None for every address
    (``0.0.0.0`` or ``::``)."""
    raw = raw.strip() or "127.0.0.1"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(f"ANONLIB_DICOM_LISTEN must be an IP address of this machine (or 0.0.0.0 for "
                          f"every address), not {raw!r}") from None
    return None if address.is_unspecified else str(address)


def build_shim(env_dir: Path, output: Path) -> Path:
    """Build the shim into ``output`` if missing or older than its source (``env/bindshim/build``);
    a :class:`ConfigError` in one line when it cannot be built."""
    script = env_dir / "bindshim" / "build"
    try:
        done = subprocess.run([str(script), str(output)], capture_output=True, text=True, check=False, timeout=120)
        problem = done.stderr.strip().splitlines()[-1] if done.returncode and done.stderr.strip() else (
            f"exit status {done.returncode}" if done.returncode else "")
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = type(exc).__name__
    if problem or not output.is_file():
        raise ConfigError(f"the DICOM port cannot be limited to ANONLIB_DICOM_LISTEN: the bind shim {output} "
                          f"could not be built ({problem or 'not written'}); install gcc and run env/setup, "
                          f"or set ANONLIB_DICOM_LISTEN=0.0.0.0 to listen on every address")
    return output


def shim_env(shim: Path, address: str, ports: list[int], preload: str = "") -> dict[str, str]:
    """The environment that makes the shim bind ``ports`` to ``address`` (after any ``preload``)."""
    return {"LD_PRELOAD": f"{shim} {preload}".strip(), "ANONLIB_BIND_ADDRESS": address,
            "ANONLIB_BIND_PORTS": ",".join(str(p) for p in ports)}


def listening_addresses(port: int, proc: Path = Path("/proc/net")) -> list[str]:
    """The addresses TCP ``port`` listens on in this network namespace (from ``/proc/net/tcp``
    and ``tcp6``); ``::ffff:a.b.c.d`` for an IPv4 address on an IPv6 socket."""
    found: list[str] = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _LISTEN_STATE:
                continue
            host, _, port_hex = fields[1].partition(":")
            if int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(host)
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(words)
            mapped = getattr(address, "ipv4_mapped", None)
            found.append(f"::ffff:{mapped}" if mapped is not None else str(address))
    return found
