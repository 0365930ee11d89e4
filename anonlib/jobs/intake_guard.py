"""What intake refuses at C-STORE, before Orthanc stores it: instances built to crash Orthanc.

Orthanc 1.10.1 parses a stored instance again whenever a REST call asks for its tags
(``GET /instances/{id}/tags``, Orthanc Explorer's instance page), on civetweb threads with
100 KB stacks, and DCMTK parses sequences recursively: an instance nested 48 or more levels
deep kills the node at that moment. The engine rejects anything nested deeper than its
``limits.max_depth`` (32) with a named reason, so research never receives one; this guard keeps
intake itself safe from what no real study holds — sequences nested deeper than
:data:`INTAKE_MAX_DEPTH`, a deflated data set that inflates past the engine's limit, an
instance over the size limit. The sender is told the store failed (a C-STORE failure
status), so nothing is dropped silently; everything between the engine's limits and these is
taken, and quarantined or rejected by the study job with its reason.

The check walks the element stream without recursion and without decoding a value
(:func:`anonlib.dicomio.files.check_instance`); a stream it cannot follow is left to Orthanc.
"""

from __future__ import annotations

from anonlib.dicomio.files import check_instance
from anonlib.dicomio.limits import MAX_SAFE_DEPTH, GiB, LimitExceeded, Limits, size_text
from anonlib.errors import InputError

__all__ = ["INTAKE_LIMITS", "INTAKE_MAX_DEPTH", "refusal"]

#: Deeper than any real study, shallower than what crashes Orthanc 1.10.1's REST threads (48);
#: also the most the engine's ``limits.max_depth`` may be set to.
INTAKE_MAX_DEPTH = MAX_SAFE_DEPTH
#: Only the depth, the inflated size and the instance size are guarded here; the text and
#: element limits are the engine's to apply (with the instance quarantined, not refused).
INTAKE_LIMITS = Limits(max_depth=INTAKE_MAX_DEPTH, max_text_bytes=4 * GiB, max_element_bytes=4 * GiB)


def refusal(data: bytes, limits: Limits = INTAKE_LIMITS) -> str | None:
    """Why intake must refuse this received instance (PHI-free), or None to store it. Only a
    breached limit refuses; a malformed or truncated stream is stored and left to the study
    job, which rejects it with its reason."""
    if len(data) > limits.max_instance_bytes:
        return f"instance too large: {len(data)} bytes (limit {size_text(limits.max_instance_bytes)})"
    try:
        check_instance(data, "instance", limits)
    except InputError as exc:
        if isinstance(exc.__cause__, LimitExceeded):
            return exc.reason
    return None
