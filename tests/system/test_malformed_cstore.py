"""Issue 11: the generated malformed and hostile files (``write_malformed``, more than 200) sent
by C-STORE into a real intake, then the study jobs run by a real worker: every file is refused
at C-STORE (failure status, or no answer at all and the association aborted), stored and then
rejected by the study job with a named reason, or delivered; research never receives a poison
instance and lives; no traceback in the worker's log; the worker's peak memory under 1 GB; no
identifying value of the sources in any log.

The files go on the wire as they are (pynetdicom sends the bytes after a file's meta
information without decoding them). What cannot be framed as a C-STORE at all — a file cut
inside its meta information, with no transfer syntax or SOP class to negotiate — is refused by
the sender, with that reason. A data set of odd length (a cut at an odd offset) is sent with one
zero byte added: a DICOM data set is even, and Orthanc's DCMTK drops the association at an odd
fragment length without answering.

Orthanc 1.10.1 never answers a C-STORE whose data set ends before its elements do: DCMTK fails
to read it, intake logs ``Store SCP Failed`` (at ERROR, always on) and keeps the association
waiting, idle, until the sender gives up or ``DicomScpTimeout`` passes (intake's
``ANONLIB_INTAKE_SCP_TIMEOUT``). About half the files are such stores. The sender watches
intake's log while a store is in flight and gives up on that line at once (aborting the
association, as a sender does at its DIMSE timeout): the answer it would wait for cannot come.
Any other store is waited for (``ANSWER_WAIT``), so a slow answer is never taken for none, and
each instance intake keeps is traced by its SOP Instance UID, a late one included. Intake
refuses the Deflated transfer syntax at association (a deflate bomb held one of its DICOM
threads at full CPU for minutes, unanswered): the deflated files are refused so. A data set
nested 20,000 levels deep kills intake while DCMTK receives it, before the intake guard can
refuse it: left out here; the node supervisor starts intake again (the last test, and
tests/system/test_node_supervision.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom import Dataset
from pynetdicom import AE, _config, build_context
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset

from anonlib.constellation import ConstellationInfo, ConstellationSettings
from anonlib.jobs.db import JobsDb
from anonlib.store import open_store
from anonlib.synthetic.malformed import MalformedFile, nested_content, write_malformed
from tests.fixtures.figures import Figures, phi_hits
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import count_instances, get
from tests.system.test_malformed import UNCLEAR, _identifiers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Seconds to wait for intake's answer to a C-STORE it did not log as unreadable: Orthanc answers
#: a store it takes or refuses, the biggest files (2 MiB of text, 50,000 items) within seconds.
ANSWER_WAIT = 30.0
#: What Orthanc 1.10.1 logs when DCMTK cannot read a C-STORE's data set; it then sends no answer.
UNREADABLE = b"Store SCP Failed"
#: Known defect (issue 11): a C-STORE nested this deep (the generator's 20,000 levels) overflows
#: the stack of intake Orthanc's DCMTK while it receives the data set — before the intake guard
#: sees it — and intake dies (segfault). Left out of the main test; see the last test below.
INTAKE_CRASH_DEPTH = 10_000
_NEST = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)  # an item of undefined length


@dataclass
class Sent:
    """What became of one file at C-STORE."""

    file: MalformedFile
    outcome: str  # stored | already stored | refused by intake | refused by the sender
    reason: str = ""
    instances: list[str] = field(default_factory=list)  # intake's new instance(s)


def _framing(path: Path) -> tuple[str, str, str] | str:
    """(SOP class, transfer syntax, SOP instance) from the file's meta information, or why it
    has none."""
    try:
        meta, _ = split_dataset(path)
    except Exception as exc:  # noqa: BLE001 - whatever the reader raises: it cannot be framed
        return f"no file meta information to frame it ({type(exc).__name__})"
    missing = [k for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
               if k not in meta]
    if missing:
        return f"file meta information without {', '.join(missing)}"
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID), str(meta.MediaStorageSOPInstanceUID)


def _even(path: Path, folder: Path) -> Path:
    data = path.read_bytes()
    if len(data) % 2 == 0:
        return path
    folder.mkdir(exist_ok=True)
    (folder / path.name).write_bytes(data + b"\0")
    return folder / path.name


def _new_instances(info: ConstellationInfo, since: int) -> tuple[dict[str, str], int]:
    """Intake's instances new since change ``since``: {ID: SOP Instance UID}, and the last change."""
    answer = get(info.intake, "/changes", since=since, limit=1000)
    new = [c["ID"] for c in answer["Changes"] if c["ChangeType"] == "NewInstance"]
    return {i: str(get(info.intake, f"/instances/{i}")["MainDicomTags"].get("SOPInstanceUID", "")) for i in new}, \
        int(answer["Last"])


class IntakeLog:
    """Intake's Orthanc log, read as it grows: how many unreadable C-STOREs it has told of."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - kept open while sending, closed by close()
        self._file.seek(0, os.SEEK_END)
        self._partial = b""
        self._unreadable = 0

    def unreadable(self) -> int:
        """``Store SCP Failed`` lines logged since this object was made."""
        *lines, self._partial = (self._partial + self._file.read()).split(b"\n")
        self._unreadable += sum(UNREADABLE in line for line in lines)
        return self._unreadable

    def close(self) -> None:
        self._file.close()


def _store(assoc: Association, path: Path, log: IntakeLog) -> tuple[Dataset, bool]:
    """C-STORE ``path`` and wait for the answer, unless intake logs meanwhile that it could not
    read the data set (no answer will come): then give up at once, as pynetdicom does at its
    DIMSE timeout (it aborts the association). Returns the answer's status (empty: none) and
    whether intake logged the store as unreadable."""
    seen = log.unreadable()  # lines of earlier stores are not this one's
    outcome: dict[str, Dataset | Exception] = {}

    def send() -> None:
        try:
            outcome["status"] = assoc.send_c_store(path)
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = exc

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    unreadable = False
    while sender.is_alive():
        sender.join(0.01)
        if not unreadable and sender.is_alive() and log.unreadable() > seen:
            unreadable = True
            assoc.dimse.msg_queue.put((None, None))  # what pynetdicom's wait for an answer gets at its timeout
    status = outcome.get("status", outcome.get("error"))
    if isinstance(status, Exception):
        raise status
    assert isinstance(status, Dataset)
    return status, unreadable


def send_raw(info: ConstellationInfo, files: list[MalformedFile], scratch: Path, intake_log: Path) -> list[Sent]:
    """C-STORE each file's bytes into intake over as few associations as possible, one at a
    time, telling from intake's changes which instance each stored file became (by its SOP
    Instance UID: a store answered too late is still traced to its file)."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the bytes on file, never decode them
    sent: list[Sent] = []
    framed: dict[Path, tuple[str, str, str]] = {}
    for f in files:
        framing = _framing(f.path)
        if isinstance(framing, str):
            sent.append(Sent(f, "refused by the sender", framing))
        else:
            framed[f.path] = framing
    ae = AE(ae_title=info.scu_aet)
    ae.acse_timeout = ae.network_timeout = 10
    ae.dimse_timeout = ANSWER_WAIT
    ae.requested_contexts = [build_context(sop, syntax) for sop, syntax in sorted({f[:2] for f in framed.values()})]
    intake = info.intake
    _, last = _new_instances(info, 0)
    unanswered: dict[str, Sent] = {}  # SOP Instance UID -> the file sent with it that got no answer

    def trace(new: dict[str, str], uid: str) -> list[str]:
        """The new instances of the file sent with ``uid``; those of earlier files answered too
        late are given to them."""
        mine = []
        for instance, stored_uid in new.items():
            late = unanswered.pop(stored_uid, None) if stored_uid != uid else None
            if late is not None:  # stored all the same, after the sender gave up
                late.outcome, late.reason, late.instances = "stored", "", [instance]
            else:
                mine.append(instance)
        return mine

    log = IntakeLog(intake_log)
    assoc: Association | None = None
    try:
        for f in files:
            if f.path not in framed:
                continue
            uid = framed[f.path][2]
            if assoc is None or not assoc.is_established:
                assoc = ae.associate(intake.dicom_host, intake.dicom_port, ae_title=intake.aet)
                assert assoc.is_established, "intake refused the association"
            try:
                status, unreadable = _store(assoc, _even(f.path, scratch), log)
            except ValueError:  # pynetdicom: no accepted presentation context for the file
                sent.append(Sent(f, "refused by intake", "SOP class or transfer syntax not accepted"))
                print(f.path.name, sent[-1].outcome, sent[-1].reason, flush=True)
                continue
            new, last = _new_instances(info, last)
            mine = trace(new, uid)
            if not status:  # no answer: the association is aborted
                assoc = None
                if unreadable:  # never answered: intake could not read the data set
                    assert not mine, (f.path.name, mine)
                    sent.append(Sent(f, "refused by intake",
                                     "data set unreadable: intake logged Store SCP Failed (DCMTK could not "
                                     "read it, e.g. cut short) and never answered; association aborted"))
                elif mine:  # answered too late: stored all the same
                    sent.append(Sent(f, "stored", "", mine))
                else:
                    sent.append(Sent(f, "refused by intake", "no answer; association aborted (by intake, "
                                     f"or by the sender after {ANSWER_WAIT:.0f} s)"))
                    unanswered[uid] = sent[-1]
            else:
                code = int(status.Status)
                if code in (0x0000, 0xB000, 0xB006, 0xB007):
                    sent.append(Sent(f, "stored" if mine else "already stored",
                                     "" if mine else "duplicate SOP Instance UID: intake keeps the first", mine))
                else:
                    assert not mine, (f.path.name, mine)
                    sent.append(Sent(f, "refused by intake", f"C-STORE failure status 0x{code:04X}"))
            print(f.path.name, sent[-1].outcome, sent[-1].reason, flush=True)
        if unanswered:  # a store answered after the sender gave up shows up a little later
            time.sleep(2)
            trace(_new_instances(info, last)[0], "")
        time.sleep(0.2)
        unreadable_stores = log.unreadable()
    finally:
        log.close()
        if assoc is not None and assoc.is_established:
            assoc.release()
    # each store intake logged as unreadable is one file given up on for it, and the other way round
    logged = sum(1 for s in sent if s.reason.startswith("data set unreadable"))
    assert unreadable_stores == logged, (unreadable_stores, logged)
    return sent


def _env(settings: ConstellationSettings) -> dict[str, str]:
    return {**os.environ, "ANONLIB_HOME": str(settings.home), "ANONLIB_RETRY_BASE_SECONDS": "1",
            "ANONLIB_RETRY_CAP_SECONDS": "2", "ANONLIB_AUDIT_CONFORMANCE": "0", "ANONLIB_AUDIT_PIXELS": "off"}


def _peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_malformed_files_through_c_store(constellation: tuple[ConstellationSettings, ConstellationInfo],
                                         tmp_path: Path, figures: Figures) -> None:
    settings, info = constellation
    files = [f for f in write_malformed(tmp_path / "src") if f.path.read_bytes().count(_NEST) < INTAKE_CRASH_DEPTH]
    assert len(files) >= 200
    research_before = count_instances(info.research)
    started = time.monotonic()
    sent = send_raw(info, files, tmp_path / "even", settings.home / "intake" / "orthanc.log")
    sending = time.monotonic() - started
    assert get(info.intake, "/system")["Name"] == "intake"  # intake lived through all of them
    stored = {i: s for s in sent for i in s.instances}

    log = tmp_path / "worker.log"
    with open(log, "ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "anonlib.cli", "-v", "worker", "--interval", "1"],
                                  stdout=out, stderr=subprocess.STDOUT, env=_env(settings))
    try:
        waited = subprocess.run([sys.executable, "-m", "anonlib.cli", "jobs", "wait", "--timeout", "240",
                                 "--poll", "0.5"], capture_output=True, text=True, env=_env(settings), timeout=300)
        peak_mib = _peak_rss_mib(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    worker_log = log.read_text(errors="replace")
    assert "Traceback" not in worker_log, worker_log[-4000:]
    assert peak_mib < 1024, f"worker peak {peak_mib} MiB"

    rejected: dict[str, str] = {}  # intake instance -> the study job's reason
    for line in worker_log.splitlines():
        if " rejected: " in line and "instance " in line:
            instance = line.split("instance ", 1)[1].split(" ", 1)[0]
            rejected[instance] = line.split(" rejected: ", 1)[1]
    records = open_store(info.db_url).deliveries("intake")
    db = JobsDb(info.db_url)
    try:
        failed = db.jobs(outstanding_failures=True, limit=None)
    finally:
        db.close()
    failures = {j.study_id: f"{j.error_class}: {j.error_message}" for j in failed}
    study_of = {i: get(info.intake, f"/instances/{i}/study")["ID"] for i in stored}

    outcome: dict[str, tuple[str, str]] = {}  # file name -> (what became of it, why)
    for s in sent:
        name = s.file.path.name
        if s.outcome != "stored":
            outcome[name] = (s.outcome, s.reason)
            continue
        [instance] = s.instances
        study = study_of[instance]
        if instance in rejected:
            outcome[name] = ("rejected by the study job", rejected[instance])
        elif study in failures:
            outcome[name] = ("study failed", failures[study])
        elif records.get(study) is not None and records[study].status == "held":
            outcome[name] = ("study held", records[study].reason)
        elif records.get(study) is not None and records[study].status == "done":
            outcome[name] = ("delivered", "")
        else:
            outcome[name] = ("unaccounted", "")
    print(f"sent in {sending:.1f} s;", Counter(o for o, _ in outcome.values()))
    for name, (what, why) in sorted(outcome.items()):
        print(name, "|", what, "|", why[:160])
    assert len(outcome) == len(files)
    assert not [n for n, (what, _) in outcome.items() if what == "unaccounted"]
    unnamed = [(n, why) for n, (what, why) in outcome.items()
               if what != "delivered" and (not why or any(u in why for u in UNCLEAR))]
    assert not unnamed, unnamed
    assert not failures, failures  # no study failed: each delivered (whole or partial) or held
    assert waited.returncode == 0, waited.stdout + waited.stderr

    assert get(info.research, "/system")["Name"]  # research is alive
    delivered = sum(r.released for r in records.values() if r.status == "done")
    assert count_instances(info.research) == research_before + delivered  # nothing else reached it
    intake_log = (settings.home / "intake" / "orthanc.log").read_text(errors="replace")
    hits = phi_hits(_identifiers(), worker_log, waited.stdout, waited.stderr,
                    "\n".join(line for line in intake_log.splitlines() if "anonlib" in line))
    assert hits == 0
    counts = Counter(what for what, _ in outcome.values())
    figures.record("malformed", "C-STORE (generated files)", files=len(files), sent=len(files) - counts["refused by the sender"],
                   refused_by_sender=counts["refused by the sender"], refused_at_c_store=counts["refused by intake"],
                   rejected=counts["rejected by the study job"] + counts["study held"] + counts["study failed"],
                   duplicates=counts["already stored"], delivered=counts["delivered"], unnamed=0, tracebacks=0,
                   peak_rss_mb=peak_mib, phi_in_logs=hits, research_alive=1)


def test_nesting_20000_levels_deep_kills_intake_and_the_node_supervisor_restarts_it(
        constellation_factory: Factory, tmp_path: Path) -> None:
    """DCMTK in intake Orthanc 1.10.1 overflows its stack receiving this, before the intake guard
    runs (anonlib cannot prevent it): intake dies and ``up``'s node supervisor starts it again
    (what is lost and delivered around such a crash: tests/system/test_node_supervision.py)."""
    settings, info = constellation_factory(ANONLIB_NODE_RESTART="1", ANONLIB_DESTINATIONS="")
    crashed = int((settings.home / "intake" / "orthanc.pid").read_text())
    deep = tmp_path / "deep.dcm"
    deep.write_bytes(nested_content(20_000, uid="2.25.3001"))
    file = MalformedFile(deep, "deep nesting", "CT_small.dcm")
    with contextlib.suppress(Exception):  # the association may die with intake
        send_raw(info, [file], tmp_path / "even", settings.home / "intake" / "orthanc.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # down, or starting
            if (int((settings.home / "intake" / "orthanc.pid").read_text()) != crashed
                    and get(info.intake, "/system")["Name"] == "intake"):
                break
        time.sleep(0.2)
    assert int((settings.home / "intake" / "orthanc.pid").read_text()) != crashed, "intake did not die"
    assert get(info.intake, "/system")["Name"] == "intake"  # back within 30 s
