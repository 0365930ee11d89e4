"""anonlib's thin Orthanc plugin for the intake node.

It refuses at C-STORE what would crash Orthanc (:mod:`anonlib.jobs.intake_guard`) and hands
two callbacks to :class:`anonlib.jobs.plugin.IntakePlugin`:
STABLE_STUDY -> queue the study (idempotent, returns at once, never raises), ORTHANC_STARTED ->
queue every study not delivered as it is (in a thread), and the REST
routes ``POST /anonlib/enqueue`` and ``GET /anonlib/jobs``. No de-identification and no store-causing
Orthanc call happen here: studies are read with ``orthanc.RestApiGet`` only, and the work is
done by ``anonlib worker`` processes. The database is opened on first use.

Environment: ``ANONLIB_SITE_PACKAGES`` (the virtualenv's site-packages), ``ANONLIB_DB_URL``
(the lookup store and job queue), ``ANONLIB_NODE_NAME`` (this node's name, default ``intake``).
"""

import json
import os
import site

site.addsitedir(os.environ["ANONLIB_SITE_PACKAGES"])

import orthanc  # noqa: E402  (provided by Orthanc's Python plugin)

from anonlib.jobs.intake_guard import refusal  # noqa: E402
from anonlib.jobs.plugin import IntakePlugin  # noqa: E402

PLUGIN = IntakePlugin(
    node=os.environ.get("ANONLIB_NODE_NAME") or "intake",
    db_url=os.environ.get("ANONLIB_DB_URL", ""),
    rest_get=orthanc.RestApiGet,
    log=orthanc.LogInfo,
    error=orthanc.LogError,
)


def on_change(change_type, level, resource_id):  # noqa: ARG001 - Orthanc's signature
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        PLUGIN.on_stable_study(resource_id)
    elif change_type == orthanc.ChangeType.ORTHANC_STARTED:
        PLUGIN.on_started()  # a reconcile in a thread: events lost while Orthanc was down


def on_rest(output, uri, **request):
    route = request["groups"][0] if request.get("groups") else ""
    status, answer = PLUGIN.handle_rest(request.get("method", "GET"), route, request.get("body"),
                                        request.get("get"))
    body = json.dumps(answer)
    if status == 200:
        output.AnswerBuffer(body, "application/json")
    elif status == 405:  # Orthanc refuses SendHttpStatus(405): it has a dedicated method
        output.SendMethodNotAllowed(answer.get("allowed", "GET"))
    else:
        output.SendHttpStatus(status, body, len(body))


def on_cstore(received):
    """Refuse what would crash Orthanc (anonlib.jobs.intake_guard) with a C-STORE failure for
    the sender. Measured on Python plugin 4.0: 0 stores the instance, a positive value drops it
    while the sender is told it succeeded, a negative value fails the store: never drop."""
    try:
        reason = refusal(received.GetInstanceData())
    except Exception as exc:  # the guard is a safety net; the study job checks everything again
        orthanc.LogError(f"anonlib: intake guard failed ({type(exc).__name__}); instance stored")
        return 0
    if reason is None:
        return 0
    orthanc.LogWarning(f"anonlib: C-STORE from {received.GetInstanceRemoteAet()} refused: {reason}")
    return -1


orthanc.RegisterOnChangeCallback(on_change)
orthanc.RegisterIncomingCStoreInstanceFilter(on_cstore)
orthanc.RegisterRestCallback("/anonlib/(.*)", on_rest)
orthanc.LogWarning(f"anonlib plugin loaded (node {PLUGIN.node})")
