"""The Orthanc plugin outside Orthanc (a fake ``orthanc`` module, an in-memory queue), the CLI's
job commands' argument handling, and ConstellationInfo.from_env."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from procrastinate import App
from procrastinate.testing import InMemoryConnector

from anonlib.cli import build_parser, main
from anonlib.constellation.info import ConstellationInfo
from anonlib.errors import ConfigError, StoreError
from anonlib.jobs.app import make_app
from anonlib.jobs.locks import patient_lock
from anonlib.jobs.plugin import UNKNOWN_RESOURCE, IntakePlugin
from anonlib.jobs.retry import StudyRetry

PLUGIN_SCRIPT = Path(__file__).resolve().parents[2] / "env" / "orthanc" / "plugin" / "anonlib_plugin.py"
SECRET = b"k" * 32
STUDY = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
PATIENT = "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718"


class OrthancException(Exception):
    """Like orthanc.OrthancException: args = (error code, description)."""


def fake_rest_get(path: str) -> str:
    if path == f"/studies/{STUDY}":
        return json.dumps({"ID": STUDY, "ParentPatient": PATIENT, "IsStable": True, "LastUpdate": "x",
                           "PatientMainDicomTags": {"PatientName": "DOE^JOHN"}})
    if path == f"/patients/{PATIENT}":
        return json.dumps({"ID": PATIENT, "Studies": [STUDY]})
    raise OrthancException(UNKNOWN_RESOURCE, "Unknown resource")


class Logs:
    def __init__(self) -> None:
        self.info: list[str] = []
        self.errors: list[str] = []


@pytest.fixture
def connector() -> InMemoryConnector:
    return InMemoryConnector()


@pytest.fixture
def logs() -> Logs:
    return Logs()


def make_plugin(connector: InMemoryConnector, logs: Logs, **kwargs: Any) -> IntakePlugin:
    def app_factory(db_url: str) -> App:
        return make_app(connector=connector, retry=StudyRetry())

    return IntakePlugin("intake", "postgresql://nowhere/db", kwargs.pop("rest_get", fake_rest_get),
                        logs.info.append, logs.errors.append, app_factory=app_factory,
                        secret_factory=lambda url: SECRET, **kwargs)


def test_stable_study_is_queued_once_and_logged_without_phi(connector: InMemoryConnector, logs: Logs) -> None:
    plugin = make_plugin(connector, logs)
    plugin.on_stable_study(STUDY)
    plugin.on_stable_study(STUDY)
    jobs = list(connector.jobs.values())
    assert len(jobs) == 1 and jobs[0]["lock"] == patient_lock(SECRET, PATIENT)
    assert jobs[0]["args"] == {"node": "intake", "study_id": STUDY}
    assert "queued as job" in logs.info[0] and "already queued" in logs.info[1]
    assert not logs.errors and not any("DOE" in line for line in logs.info)


def test_a_vanished_study_is_not_an_error(connector: InMemoryConnector, logs: Logs) -> None:
    make_plugin(connector, logs).on_stable_study("gone-study")
    assert not connector.jobs and not logs.errors and "gone" in logs.info[0]


def test_callbacks_never_raise(connector: InMemoryConnector, logs: Logs) -> None:
    def broken_app(db_url: str) -> App:
        raise StoreError("could not open the job queue (OperationalError)")

    plugin = IntakePlugin("intake", "postgresql://x/y", fake_rest_get, logs.info.append, logs.errors.append,
                          app_factory=broken_app, secret_factory=lambda url: SECRET)
    plugin.on_stable_study(STUDY)  # must not raise
    assert "could not queue study" in logs.errors[0] and "catch-up" in logs.errors[0]
    status, answer = plugin.handle_rest("POST", "enqueue", json.dumps({"study": STUDY}).encode(), None)
    assert status == 503 and "could not open the job queue" in answer["error"]

    def exploding_get(path: str) -> str:
        raise RuntimeError("DOE^JOHN")

    plugin = make_plugin(connector, logs, rest_get=exploding_get)
    plugin.on_stable_study(STUDY)
    assert "RuntimeError" in logs.errors[-1] and not any("DOE" in line for line in logs.errors)


def test_rest_enqueue_study_and_patient(connector: InMemoryConnector, logs: Logs) -> None:
    plugin = make_plugin(connector, logs)
    status, answer = plugin.handle_rest("POST", "enqueue", json.dumps({"study": STUDY}).encode(), None)
    assert status == 200 and answer["queued"][0]["study"] == STUDY and answer["queued"][0]["created"]
    status, answer = plugin.handle_rest("POST", "enqueue", json.dumps({"patient": PATIENT}), None)
    assert status == 200 and answer["queued"] == [{"study": STUDY, "job": answer["queued"][0]["job"],
                                                   "created": False}]
    assert len(connector.jobs) == 1


@pytest.mark.parametrize("method, route, body, expected", [
    ("POST", "enqueue", b"not json", 400),
    ("POST", "enqueue", b'{"study": 3}', 400),
    ("POST", "enqueue", b'{"study": "a", "patient": "b"}', 400),
    ("POST", "enqueue", b'{"series": "a"}', 400),
    ("POST", "enqueue", b'{"study": "missing"}', 404),
    ("POST", "enqueue", b'{"patient": "missing"}', 404),
    ("GET", "enqueue", None, 405),
    ("POST", "jobs", b"{}", 405),
    ("GET", "nothing", None, 404),
])
def test_rest_refusals(connector: InMemoryConnector, logs: Logs, method: str, route: str,
                       body: bytes | None, expected: int) -> None:
    status, answer = make_plugin(connector, logs).handle_rest(method, route, body, None)
    assert status == expected and "error" in answer and not connector.jobs


def test_rest_jobs_validates_its_query(connector: InMemoryConnector, logs: Logs) -> None:
    plugin = make_plugin(connector, logs)
    assert plugin.handle_rest("GET", "jobs", None, {"status": "bogus"})[0] == 400
    assert plugin.handle_rest("GET", "jobs", None, {"limit": "x"})[0] == 400


# -- the plugin script with a fake orthanc module ---------------------------------------------

class FakeOutput:
    def __init__(self) -> None:
        self.answers: list[tuple[Any, ...]] = []

    def AnswerBuffer(self, body: str, mime: str) -> None:  # noqa: N802 - Orthanc's API
        self.answers.append((200, body, mime))

    def SendHttpStatus(self, status: int, body: str, size: int) -> None:  # noqa: N802
        assert size == len(body) and status not in (200, 301, 401, 405)  # Orthanc refuses these
        self.answers.append((status, body))

    def SendMethodNotAllowed(self, allowed: str) -> None:  # noqa: N802
        self.answers.append((405, allowed))


@pytest.fixture
def plugin_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    registered: dict[str, Any] = {}
    orthanc = types.ModuleType("orthanc")
    orthanc.ChangeType = types.SimpleNamespace(STABLE_STUDY=9, NEW_INSTANCE=1, ORTHANC_STARTED=10)  # type: ignore[attr-defined]
    orthanc.RestApiGet = fake_rest_get  # type: ignore[attr-defined]
    orthanc.OrthancException = OrthancException  # type: ignore[attr-defined]
    for name in ("LogInfo", "LogWarning", "LogError"):
        setattr(orthanc, name, lambda message: None)
    orthanc.RegisterOnChangeCallback = lambda cb: registered.__setitem__("change", cb)  # type: ignore[attr-defined]
    orthanc.RegisterRestCallback = lambda uri, cb: registered.__setitem__(uri, cb)  # type: ignore[attr-defined]
    orthanc.RegisterIncomingCStoreInstanceFilter = lambda cb: registered.__setitem__("cstore", cb)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orthanc", orthanc)
    monkeypatch.setenv("ANONLIB_SITE_PACKAGES", str(Path(pytest.__file__).parents[1]))
    monkeypatch.setenv("ANONLIB_DB_URL", "postgresql://nowhere.invalid/db")
    monkeypatch.setenv("ANONLIB_NODE_NAME", "intake")
    spec = importlib.util.spec_from_file_location("anonlib_plugin_under_test", PLUGIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must not connect to anything
    module.registered = registered  # type: ignore[attr-defined]
    return module


def test_plugin_script_registers_and_delegates(plugin_module: types.ModuleType, connector: InMemoryConnector) -> None:
    registered = plugin_module.registered
    assert set(registered) == {"change", "/anonlib/(.*)", "cstore"}
    plugin = plugin_module.PLUGIN
    assert isinstance(plugin, IntakePlugin) and plugin._queue is None  # nothing opened at import
    plugin._app_factory = lambda url: make_app(connector=connector, retry=StudyRetry())
    plugin._secret_factory = lambda url: SECRET
    registered["change"](1, 2, STUDY)  # NEW_INSTANCE: ignored
    assert not connector.jobs
    registered["change"](9, 2, STUDY)  # STABLE_STUDY
    assert len(connector.jobs) == 1
    output = FakeOutput()
    registered["/anonlib/(.*)"](output, "/anonlib/enqueue", method="POST", groups=("enqueue",),
                                body=json.dumps({"study": STUDY}).encode())
    registered["/anonlib/(.*)"](output, "/anonlib/enqueue", method="GET", groups=("enqueue",), get={})
    assert output.answers[0][0] == 200 and json.loads(output.answers[0][1])["queued"][0]["created"] is False
    assert output.answers[1] == (405, "POST")


class FakeReceived:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def GetInstanceData(self) -> bytes:  # noqa: N802 - Orthanc's API
        return self.data

    def GetInstanceRemoteAet(self) -> str:  # noqa: N802
        return "SENDER"


def test_plugin_refuses_at_c_store_what_would_crash_orthanc(plugin_module: types.ModuleType) -> None:
    from anonlib.synthetic.malformed import nested_content, with_uid

    cstore = plugin_module.registered["cstore"]
    assert cstore(FakeReceived(with_uid("2.25.5"))) == 0  # stored
    assert cstore(FakeReceived(nested_content(50))) == -1  # a failure status for the sender, never a silent drop
    assert cstore(FakeReceived(b"not dicom")) == 0  # left to Orthanc and the study job


def test_plugin_survives_an_unreachable_database(plugin_module: types.ModuleType) -> None:
    errors: list[str] = []
    plugin_module.PLUGIN._error = errors.append
    plugin_module.registered["change"](9, 2, STUDY)  # the real factory: the database does not exist
    assert errors and "could not queue study" in errors[0]


# -- CLI --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["enqueue"],
    ["enqueue", "--study", "a", "--patient", "b"],
    ["jobs", "retry"],
    ["jobs", "retry", "3", "--failed"],
    ["jobs", "wait"],
    ["jobs", "list", "--status", "bogus"],
    ["worker", "--concurrency", "x"],
])
def test_cli_refuses_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2


def test_cli_parses_job_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["enqueue", "--query", '{"ModalitiesInStudy": "CT"}', "--force"])
    assert (args.query, args.force, args.node, args.study) == ('{"ModalitiesInStudy": "CT"}', True, "intake", None)
    args = parser.parse_args(["jobs", "retry", "12"])
    assert (args.job_id, args.failed) == (12, False)
    args = parser.parse_args(["jobs", "wait", "--timeout", "30"])
    assert args.timeout == 30.0
    args = parser.parse_args(["worker", "--concurrency", "3"])
    assert args.concurrency == 3


def test_cli_configuration_errors_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path))  # no constellation.json, no variables
    for name in ("ANONLIB_DB_URL", "ANONLIB_INTAKE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["jobs", "list"]) == 2
    assert "ANONLIB_DB_URL" in capsys.readouterr().err
    assert main(["enqueue", "--query", "{not json"]) == 2
    assert main(["worker", "--concurrency", "0"]) == 2


ENV = {
    "ANONLIB_DB_URL": "postgresql://anonlib:pw@postgres:5432/anonlib",
    "ANONLIB_INTAKE_URL": "http://orthanc-intake:8042/",
    "ANONLIB_RESEARCH_URL": "http://orthanc-research:8042",
    "ANONLIB_INTAKE_USER": "anonlib-intake",
    "ANONLIB_INTAKE_PASSWORD": "secret-i",
    "ANONLIB_RESEARCH_USER": "anonlib-research",
    "ANONLIB_RESEARCH_PASSWORD": "secret-r",
    "ANONLIB_EXPORT_DIR": "/export",
}


def test_constellation_info_from_env() -> None:
    info = ConstellationInfo.from_env({**ENV, "ANONLIB_DESTINATIONS": "pacs, ,archive"})
    assert info.db_url == ENV["ANONLIB_DB_URL"] and info.export_dir == "/export"
    assert info.intake.url == "http://orthanc-intake:8042" and info.intake.dicom_host == "orthanc-intake"
    assert info.research.role == "research" and info.research.password == "secret-r"
    assert (info.intake.username, info.intake.password) == ("anonlib-intake", "secret-i")
    assert info.intake.as_reader() == info.intake  # no reader variables: the worker's user
    assert info.destinations == ["pacs", "archive"]
    assert ConstellationInfo.from_dict(json.loads(info.to_json())) == info


def test_constellation_info_from_env_reader_users() -> None:
    info = ConstellationInfo.from_env({**ENV, "ANONLIB_INTAKE_READER_USER": "reader-intake",
                                       "ANONLIB_INTAKE_READER_PASSWORD": "secret-ir"})
    reader = info.intake.as_reader()
    assert (reader.username, reader.password, reader.url) == ("reader-intake", "secret-ir", info.intake.url)
    assert info.research.as_reader() == info.research


@pytest.mark.parametrize("change", [{"ANONLIB_DB_URL": ""}, {"ANONLIB_INTAKE_URL": "orthanc-intake:8042"},
                                    {"ANONLIB_RESEARCH_PASSWORD": ""}])
def test_constellation_info_from_env_refuses_incomplete(change: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ConstellationInfo.from_env({**ENV, **change})


def test_destination_ports_are_settings_like_the_other_nodes(tmp_path: Path) -> None:
    from anonlib.constellation import ConstellationSettings

    env = {"ANONLIB_HOME": str(tmp_path), "ANONLIB_DESTINATIONS": "dest,archive", "ANONLIB_DEST_HTTP_PORT": "0",
           "ANONLIB_DEST_DICOM_PORT": "11112"}
    ports = {n.name: (n.http_port, n.dicom_port) for n in ConstellationSettings.from_env(env).nodes}
    assert ports["dest"] == (0, 11112) and ports["archive"] == (8045, 4245)
    with pytest.raises(ConfigError, match="ANONLIB_DEST_HTTP_PORT"):
        ConstellationSettings.from_env({**env, "ANONLIB_DEST_HTTP_PORT": "http"})


@pytest.mark.parametrize("argv", [["--study", "../patients"], ["--study", ""], ["--patient", "../studies"],
                                  ["--study", "8A8CF898-CA27C490-D0C7058C-929D0581-2BBF104D/.."]])
def test_enqueue_refuses_what_is_no_orthanc_id_in_one_line(argv: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from anonlib.cli import main

    assert main(["enqueue", *argv]) == 2  # before any connection: no constellation is needed
    err = capsys.readouterr().err
    assert "takes an Orthanc ID" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
