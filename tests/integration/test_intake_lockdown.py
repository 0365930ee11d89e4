"""Intake locked down (issue 11, item 1), against a real constellation (Orthanc 1.10.1 +
PostgreSQL) and dcmtk: C-FIND / C-GET / C-MOVE return nothing to any caller; C-STORE only from
the allowed hosts (another address of this machine plays "another host"); each node's and role's
credentials open that node only, the reader's read only; nothing under ANONLIB_HOME readable by
other users, whatever the umask."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE, _config, build_context

from anonlib.constellation import ConstellationInfo, ConstellationSettings, NodeInfo, manage
from anonlib.constellation.listen import listening_addresses
from anonlib.synthetic.malformed import nested_content
from tests.fixtures.figures import Figures
from tests.fixtures.orthanc import _drop, _settings
from tests.orthanc_helpers import count_instances

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
CT_NAME = "CompressedSamples"  # CT_small's PatientName


def _other_address() -> str | None:
    """A non-loopback IPv4 address of this machine: a connection to it comes from it."""
    try:
        addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except OSError:
        return None
    return next((a for a in addresses if "." in a and not a.startswith("127.")), None)


OTHER = _other_address()
needs_other = pytest.mark.skipif(OTHER is None, reason="this machine has no non-loopback IPv4 address")


def _dcmtk(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TCP_NODELAY": "1"})


def _store(info: ConstellationInfo, path: Path, host: str | None = None, aet: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    """storescu from this machine to ``host`` (intake's 127.0.0.1 by default: the call then comes
    from 127.0.0.1; to OTHER, from OTHER) calling itself ``aet`` (the constellation's sender)."""
    intake = info.intake
    return _dcmtk("storescu", "-v", "-aet", aet or info.scu_aet, "-aec", intake.aet, host or intake.dicom_host,
                  str(intake.dicom_port), str(path))


def _rejected(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "Association Rejected" in result.stderr


def _private(home: Path) -> dict[str, str]:
    """Every path under ``home`` (itself included) that its group or others may use."""
    found = {}
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            found[str(path.relative_to(home))] = oct(mode)
    return found


@pytest.fixture(scope="module")
def stored(constellation: tuple[ConstellationSettings, ConstellationInfo]) -> ConstellationInfo:
    """The shared constellation with CT_small C-STOREd into intake from the allowed host."""
    info = constellation[1]
    result = _store(info, CT)
    assert result.returncode == 0 and "Success" in result.stderr, result.stderr
    assert count_instances(info.intake) == 1
    return info


# -- Find / Get / Move -----------------------------------------------------------------------------

CALLERS = ["ANONLIB_SCU", "STRANGER", "ANONLIB_INTAKE", "ANONLIB_RESEARCH"]


@pytest.mark.parametrize("caller", CALLERS)
def test_c_find_returns_nothing(stored: ConstellationInfo, caller: str, figures: Figures) -> None:
    intake = stored.intake
    for level in ("PATIENT", "STUDY"):
        found = _dcmtk("findscu", "-v", "-aet", caller, "-aec", intake.aet, "-S" if level == "STUDY" else "-P",
                       "-k", f"QueryRetrieveLevel={level}", "-k", "PatientName", "-k", "StudyInstanceUID",
                       intake.dicom_host, str(intake.dicom_port))
        output = found.stdout + found.stderr
        assert CT_NAME not in output and CT_STUDY not in output
        assert "Find Response" not in output or "Pending" not in output
    figures.record("access", f"C-FIND as {caller}", attempts=2, refused=2, answer="DICOM: nothing returned")


@pytest.mark.parametrize("caller", CALLERS)
def test_c_get_returns_nothing(stored: ConstellationInfo, caller: str, tmp_path: Path, figures: Figures) -> None:
    intake = stored.intake
    got = _dcmtk("getscu", "-v", "-aet", caller, "-aec", intake.aet, "-S", "-k", "QueryRetrieveLevel=STUDY",
                 "-k", f"StudyInstanceUID={CT_STUDY}", "-od", str(tmp_path), intake.dicom_host,
                 str(intake.dicom_port))
    assert list(tmp_path.iterdir()) == []
    assert "Received C-STORE Request" not in got.stderr
    figures.record("access", f"C-GET as {caller}", attempts=1, refused=1, answer="DICOM: nothing returned")


@pytest.mark.parametrize("caller", CALLERS)
def test_c_move_sends_nothing(stored: ConstellationInfo, caller: str, tmp_path: Path, figures: Figures) -> None:
    """The move destination listens (storescp) and is the caller itself; nothing arrives."""
    intake = stored.intake
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = subprocess.Popen(["storescp", "-aet", caller, "-od", str(tmp_path), str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        moved = _dcmtk("movescu", "-v", "-aet", caller, "-aem", caller, "-aec", intake.aet, "-S",
                       "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={CT_STUDY}",
                       intake.dicom_host, str(intake.dicom_port))
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    assert list(tmp_path.iterdir()) == []
    assert "Completed Suboperations    : 1" not in moved.stderr
    figures.record("access", f"C-MOVE as {caller}", attempts=1, refused=1, answer="DICOM: nothing returned")


# -- C-STORE from allowed hosts only ---------------------------------------------------------------

def _ss_listening(port: int) -> list[str]:
    """``ss -ltn``'s local addresses listening on ``port``."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return sorted(line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip())


def test_dicom_listens_on_loopback_only_rest_as_before(stored: ConstellationInfo) -> None:
    """ANONLIB_DICOM_LISTEN's default (127.0.0.1): every node's DICOM port is bound to 127.0.0.1
    only (Orthanc 1.10.1 cannot do it; the bind shim does), storescu to 127.0.0.1 still works (the
    fixture's C-STORE); the REST port is untouched (every address, RemoteAccessAllowed false)."""
    for node in stored.nodes.values():
        assert listening_addresses(node.dicom_port) == ["127.0.0.1"], node.name
        assert _ss_listening(node.dicom_port) == ["127.0.0.1"], node.name
        http = int(node.url.rsplit(":", 1)[1])
        assert "0.0.0.0" in listening_addresses(http), node.name
        assert _ss_listening(http) == ["0.0.0.0"], node.name


@needs_other
def test_dicom_from_another_address_finds_no_port(stored: ConstellationInfo) -> None:
    """This machine's other address: a TCP connection to intake's DICOM port is refused (nothing
    listens there), so storescu gets no association and nothing is stored."""
    assert OTHER is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((OTHER, stored.intake.dicom_port), timeout=10).close()
    refused = _store(stored, MR, host=OTHER)
    assert refused.returncode != 0 and "Association Request Failed" in refused.stderr, refused.stderr
    assert count_instances(stored.intake) == 1  # CT_small only


SENDERS = f"ANONLIB_SCU@127.0.0.1,REMOTE_SCU@{OTHER},FAR_SCU@192.0.2.254" if OTHER else \
    "ANONLIB_SCU@127.0.0.1,FAR_SCU@192.0.2.254"
SCP_TIMEOUT = 3  # intake's DicomScpTimeout in the listed constellation (30 by default)


@pytest.fixture(scope="module")
def listed(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[ConstellationSettings, ConstellationInfo]]:
    """A second constellation (no destination), started under umask 000, whose intake allows a
    list of senders, each its own AET and host: ANONLIB_SCU on 127.0.0.1, REMOTE_SCU on this
    machine's other address, FAR_SCU on a documentation address no test calls from. Senders on
    other hosts need intake's DICOM port on every address: ANONLIB_DICOM_LISTEN=0.0.0.0."""
    settings = _settings(pg_admin_url, tmp_path_factory.mktemp("listed"),
                         {"ANONLIB_ALLOWED_SENDERS": SENDERS, "ANONLIB_DESTINATIONS": "",
                          "ANONLIB_DICOM_LISTEN": "0.0.0.0", "ANONLIB_INTAKE_SCP_TIMEOUT": str(SCP_TIMEOUT)})
    previous = os.umask(0)
    try:
        info = manage.up(settings)
    finally:
        os.umask(previous)
    try:
        yield settings, info
    finally:
        manage.down(settings)
        _drop(pg_admin_url, settings.db_prefix)


@needs_other
def test_each_listed_sender_stores_from_its_own_host_only(listed: tuple[ConstellationSettings, ConstellationInfo],
                                                          figures: Figures) -> None:
    """Several senders, each declared as its own modality (AET + host): Orthanc 1.10.1 rejects
    at association an AET calling from another host than its own (DicomCheckModalityHost, for
    every declared modality, not only the first) and an AET not declared. No Lua filter."""
    _, info = listed
    assert info.scu_aet == "ANONLIB_SCU"
    before = count_instances(info.intake)
    for aet, host in (("ANONLIB_SCU", None), ("REMOTE_SCU", OTHER)):  # each from its own host
        accepted = _store(info, CT if aet == "ANONLIB_SCU" else MR, host=host, aet=aet)
        assert accepted.returncode == 0 and "Success" in accepted.stderr, (aet, accepted.stderr)
    assert count_instances(info.intake) == before + 2
    for aet, host in (("ANONLIB_SCU", OTHER), ("REMOTE_SCU", None),  # a declared AET, the wrong host
                      ("FAR_SCU", None), ("FAR_SCU", OTHER),  # the last declared, from neither its host
                      ("STRANGER", None), ("STRANGER", OTHER)):  # never declared
        refused = _store(info, CT, host=host, aet=aet)
        assert _rejected(refused), (aet, host, refused.stderr)
    assert count_instances(info.intake) == before + 2
    figures.record("access", "C-STORE from an undeclared AET or another host", attempts=6, refused=6,
                   answer="association rejected")


def test_listening_on_every_address_runs_no_shim(listed: tuple[ConstellationSettings, ConstellationInfo]
                                                ) -> None:
    """ANONLIB_DICOM_LISTEN=0.0.0.0: Orthanc runs without the shim and binds every address, as
    Orthanc 1.10.1 does by itself; the host check above is what guards it then."""
    settings, info = listed
    assert "0.0.0.0" in listening_addresses(info.intake.dicom_port)
    pid = int((settings.home / "intake" / "orthanc.pid").read_text())
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith((b"LD_PRELOAD=", b"ANONLIB_BIND_"))]


def _intake_alive(settings: ConstellationSettings, info: ConstellationInfo) -> bool:
    pid = int((settings.home / "intake" / "orthanc.pid").read_text())
    try:
        os.kill(pid, 0)
        return httpx.get(f"{info.intake.url}/system", auth=(info.intake.username, info.intake.password),
                         timeout=30).json()["Name"] == "intake"
    except (OSError, httpx.HTTPError):
        return False


@pytest.mark.parametrize("attempt", [1, 2, 3])  # the crash with a Lua filter was intermittent
def test_deeply_nested_instance_over_c_store_leaves_intake_alive(
        listed: tuple[ConstellationSettings, ConstellationInfo], tmp_path: Path, attempt: int) -> None:
    """A 50-level nested ContentSequence sent by C-STORE to an intake with a list of senders
    (before, the Lua ReceivedInstanceFilter that crashed in liblua5.3): intake's guard refuses it
    with a failure status, never stores it, and keeps running."""
    settings, info = listed
    path = tmp_path / "nested.dcm"
    path.write_bytes(nested_content(50, uid=f"2.25.4242{attempt}"))
    sent = _store(info, path)
    assert sent.returncode != 0 and "Received Store Response (Refused" in sent.stderr, sent.stderr
    assert _intake_alive(settings, info)
    found = httpx.post(f"{info.intake.url}/tools/lookup", content=f"2.25.4242{attempt}".encode(),
                       auth=(info.intake.username, info.intake.password), timeout=30).json()
    assert found == []


def test_a_store_intake_cannot_read_holds_its_association_only_the_scp_timeout(
        listed: tuple[ConstellationSettings, ConstellationInfo], tmp_path: Path) -> None:
    """Orthanc 1.10.1 never answers a C-STORE whose data set is cut short (DCMTK cannot read it;
    intake logs "Store SCP Failed") and keeps the association, holding one of its DICOM threads.
    A sender that waits for ever is cut off by intake after ANONLIB_INTAKE_SCP_TIMEOUT seconds
    (DicomScpTimeout), not the 60 s before; a sender idle for less keeps its association."""
    settings, info = listed
    intake = info.intake
    data = CT.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:len(data) // 2 // 2 * 2])  # inside Pixel Data, even
    log = settings.home / "intake" / "orthanc.log"
    failed_before = log.read_bytes().count(b"Store SCP Failed")
    ae = AE(ae_title="ANONLIB_SCU")
    ae.dimse_timeout = None  # the sender never gives up
    ae.requested_contexts = [build_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")]
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # the bytes as they are on file
    try:
        assoc = ae.associate(intake.dicom_host, intake.dicom_port, ae_title=intake.aet)
        assert assoc.is_established
        time.sleep(SCP_TIMEOUT - 1.5)  # idle for less than the timeout: the association stays
        assert assoc.is_established
        started = time.monotonic()
        status = assoc.send_c_store(cut)
        held = time.monotonic() - started
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
        ae.shutdown()
    assert not status and assoc.is_aborted  # no answer, the association aborted by intake
    assert SCP_TIMEOUT - 0.5 < held < SCP_TIMEOUT + 4, held
    assert log.read_bytes().count(b"Store SCP Failed") == failed_before + 1
    assert _intake_alive(settings, info)
    stored = _store(info, MR)  # the next sender is served
    assert stored.returncode == 0 and "Success" in stored.stderr, stored.stderr


@needs_other
def test_rest_answers_this_machine_only(stored: ConstellationInfo) -> None:
    """REST listens on every address (the shim moves only the DICOM port); RemoteAccessAllowed
    false refuses other hosts' REST even with the right credentials."""
    for node in stored.nodes.values():
        auth = (node.username, node.password)
        assert _status(node, "GET", "/system", auth) == 200
        port = node.url.rsplit(":", 1)[1]
        assert httpx.get(f"http://{OTHER}:{port}/system", auth=auth, timeout=30).status_code in (401, 403)


# -- credentials per node and role -----------------------------------------------------------------

def _status(node: NodeInfo, method: str, path: str, auth: tuple[str, str], **kwargs: object) -> int:
    return httpx.request(method, f"{node.url}{path}", auth=auth, timeout=30, **kwargs).status_code  # type: ignore[arg-type]


def test_one_nodes_credentials_do_not_open_another(stored: ConstellationInfo, figures: Figures) -> None:
    intake, research = stored.intake, stored.research
    refused = 0
    for owner, other in ((research, intake), (intake, research)):
        for auth in ((owner.username, owner.password), (owner.reader_username, owner.reader_password),
                     ("", ""), ("orthanc", "orthanc"), (owner.username, "wrong")):
            assert _status(other, "GET", "/studies", auth) == 401, (owner.name, auth[0])
            refused += 1
        assert _status(owner, "GET", "/studies", (owner.reader_username, owner.reader_password)) == 200
    figures.record("access", "REST with another node's, no or wrong credentials", attempts=refused,
                   refused=refused, answer="401")


@pytest.mark.parametrize("name", ["intake", "research"])
def test_the_reader_reads_but_cannot_write(stored: ConstellationInfo, name: str, figures: Figures) -> None:
    node = stored.node(name)
    reader = (node.reader_username, node.reader_password)
    if name == "research":  # something to read and to try deleting
        upload = httpx.post(f"{node.url}/instances", content=CT.read_bytes(), auth=(node.username, node.password))
        assert upload.status_code == 200
    [study] = httpx.get(f"{node.url}/studies", auth=reader).json()
    assert _status(node, "GET", f"/studies/{study}", reader) == 200
    assert _status(node, "POST", "/tools/find", reader, json={"Level": "Study", "Query": {}}) == 200
    assert _status(node, "POST", "/tools/lookup", reader, content=CT_STUDY.encode()) == 200
    assert _status(node, "DELETE", f"/studies/{study}", reader) == 403
    assert _status(node, "POST", f"/studies/{study}/anonymize", reader, json={}) == 403
    assert _status(node, "POST", "/instances", reader, content=MR.read_bytes()) == 403
    assert _status(node, "PUT", f"/studies/{study}/metadata/1024", reader, content=b"x") == 403
    assert _status(node, "POST", "/tools/reset", reader) == 403
    assert count_instances(node) == 1
    assert _status(node, "PUT", f"/studies/{study}/metadata/1024", (node.username, node.password),
                   content=b"x") == 200  # the worker still writes
    figures.record("access", f"writes by {name}'s reader", attempts=5, refused=5, answer="403")


# -- private files ---------------------------------------------------------------------------------

def test_nothing_under_home_is_readable_by_others(constellation: tuple[ConstellationSettings, ConstellationInfo],
                                                  stored: ConstellationInfo) -> None:
    settings, _ = constellation
    assert (settings.home / "intake" / "storage").is_dir()
    assert any(p.is_file() for p in (settings.home / "intake" / "storage").rglob("*"))
    assert _private(settings.home) == {}


def test_nothing_is_readable_by_others_under_umask_000(listed: tuple[ConstellationSettings, ConstellationInfo]
                                                        ) -> None:
    settings, info = listed
    assert _store(info, MR).returncode == 0
    assert count_instances(info.intake) >= 1
    assert any(p.is_file() for p in (settings.home / "intake" / "storage").rglob("*"))
    assert _private(settings.home) == {}


def test_a_shim_that_does_not_take_stops_up(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory,
                                            tmp_path: Path) -> None:
    """Fail closed: with a library in ANONLIB_BINDSHIM that is not the shim (so Orthanc binds
    every address), `up` finds the DICOM port on 0.0.0.0, stops that node and says so."""
    fake = tmp_path / "not-the-shim.so"  # an empty library, newer than the shim's source: not rebuilt
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(fake), "-x", "c", "/dev/null"], check=True, timeout=60)
    settings = _settings(pg_admin_url, tmp_path_factory.mktemp("noshim"),
                         {"ANONLIB_DESTINATIONS": "", "ANONLIB_BINDSHIM": str(fake)})
    try:
        with pytest.raises(Exception, match=r"listened for DICOM on every address \(0\.0\.0\.0:\d+\) despite "
                                            r"ANONLIB_DICOM_LISTEN=127\.0\.0\.1: stopped"):
            manage.up(settings)
        pidfile = settings.home / "research" / "orthanc.pid"
        assert not pidfile.exists() or not manage.pid_alive(int(pidfile.read_text()))
    finally:
        if settings.info_path.exists():
            manage.down(settings)
        _drop(pg_admin_url, settings.db_prefix)
