"""docker-compose.yml and env/docker/, checked without a Docker engine (see tests/docker_checks.py).

The real files must pass every check; broken copies (a mount path, a variable, a duplicate key,
a literal password, ...) must be caught, which proves the checks can fail.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from anonlib.constellation.manage import drop_databases
from tests import docker_checks as dc

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = ROOT / "env/docker/example.env"
HEALTHCHECK = ROOT / "env/docker/orthanc-healthcheck.py"
INIT_SCRIPT = ROOT / "env/docker/postgres-init/10-anonlib-databases.sh"


def _env() -> dict[str, str]:
    return dc.parse_env_file(EXAMPLE_ENV.read_text())


def _compose(root: Path = ROOT) -> dict:
    return dc.load_compose(root / "docker-compose.yml", _env())


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The files docker-compose.yml uses, copied into a temporary repository to break."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copytree(ROOT / "env/orthanc", tmp_path / "env/orthanc")
    shutil.copytree(ROOT / "env/docker", tmp_path / "env/docker")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path)
    (tmp_path / "anonlib").mkdir()
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    content = path.read_text()
    assert old in content, f"{old!r} not in {path}"
    path.write_text(content.replace(old, new, 1))


def _problems(root: Path) -> list[str]:
    return dc.all_problems(root, root / "env/docker/example.env")


def _assert_caught(root: Path, *fragments: str) -> None:
    problems = _problems(root)
    for fragment in fragments:
        assert any(fragment in p for p in problems), f"{fragment!r} not reported; got {problems}"


# -- the real files ------------------------------------------------------------------------------

def test_real_files_pass_every_check() -> None:
    assert _problems(ROOT) == []


@pytest.mark.parametrize("service", dc.REQUIRED_SERVICES)
def test_required_service_exists(service: str) -> None:
    assert service in _compose()["services"]


@pytest.mark.parametrize("service, role", sorted(dc.ORTHANC_ROLES.items()))
def test_orthanc_service_mounts_its_role_and_sets_every_variable(service: str, role: str) -> None:
    compose = _compose()
    assert dc.check_orthanc_service(service, compose, ROOT) == []
    mounted = {m.source for m in dc.mounts(compose["services"][service])}
    assert f"./env/orthanc/{role}/plugins.json" in mounted
    assert "./env/orthanc/common/orthanc.json" in mounted


def test_orthanc_configuration_is_what_each_node_needs() -> None:
    compose = _compose()
    intake = compose["services"]["orthanc-intake"]
    image_env = dc.dockerfile_env(dc.dockerfile_of(intake, ROOT))
    config, problems = dc.orthanc_configuration(intake, ROOT, image_env)
    assert problems == []
    assert config["Name"] == "intake"
    env = _env()
    assert config["RegisteredUsers"] == {"anonlib-intake": env["ANONLIB_INTAKE_PASSWORD"],
                                         "reader-intake": env["ANONLIB_INTAKE_READER_PASSWORD"]}
    assert config["LuaScripts"] == ["/opt/anonlib/lua/roles.lua"]  # no Lua on the store path
    assert config["DicomCheckModalityHost"] is True and config["DicomAlwaysAllowStore"] is False
    assert config["DicomScpTimeout"] == 30  # a C-STORE intake cannot read holds a DICOM thread that long
    assert config["DeflatedTransferSyntaxAccepted"] is False  # a deflate bomb would hold one at full CPU
    assert not any(config[f"DicomAlwaysAllow{k}"] for k in ("Echo", "Store", "Find", "FindWorklist", "Get", "Move"))
    assert config["Plugins"] == [f"{dc.IMAGE_PLUGIN_DIR}/libOrthancPostgreSQLIndex.so",
                                 f"{dc.IMAGE_PLUGIN_DIR}/libOrthancPython.so"]
    assert config["PostgreSQL"]["Database"] == "anonlib_intake"
    sender = config["DicomModalities"]["sender"]
    # the host as intake sees it: the compose network's fixed gateway (a name never matches)
    assert (sender["AET"], sender["Host"]) == ("ANONLIB_SCU", env["ANONLIB_DOCKER_GATEWAY"])
    assert sender["AllowStore"] is True
    assert compose["networks"]["default"]["ipam"]["config"] == [{"subnet": env["ANONLIB_DOCKER_SUBNET"],
                                                                "gateway": env["ANONLIB_DOCKER_GATEWAY"]}]
    assert not any(sender[f"Allow{k}"] for k in ("Find", "FindWorklist", "Get", "Move", "StorageCommitment"))
    assert image_env["ANONLIB_SITE_PACKAGES"] == "/opt/anonlib/site-packages"
    research, problems = dc.orthanc_configuration(compose["services"]["orthanc-research"], ROOT, {})
    assert problems == []
    assert research["PostgreSQL"]["Database"] == "anonlib_research"
    assert research["RegisteredUsers"] == {"anonlib-research": env["ANONLIB_RESEARCH_PASSWORD"],
                                           "reader-research": env["ANONLIB_RESEARCH_READER_PASSWORD"]}
    assert "PythonScript" not in research
    assert research["DicomScpTimeout"] == 60


def test_worker_gets_the_constellation_from_its_environment() -> None:
    env = dc.environment(_compose()["services"]["anonlib-worker"])
    assert set(dc.WORKER_VARIABLES) | {"TCP_NODELAY"} == set(env)
    assert env["ANONLIB_DB_URL"] == (
        f"postgresql://anonlib:{_env()['ANONLIB_PG_PASSWORD']}@postgres:5432/anonlib")


def test_every_orthanc_and_worker_container_has_tcp_nodelay() -> None:
    services = _compose()["services"]
    for name in (*dc.ORTHANC_ROLES, "anonlib-worker"):
        assert dc.environment(services[name])["TCP_NODELAY"] == "1", name


def test_no_literal_password_and_example_values_are_placeholders() -> None:
    env = _env()
    assert dc.check_secrets((ROOT / "docker-compose.yml").read_text(), env) == []
    for key, value in env.items():
        if "PASSWORD" in key:
            assert value.startswith("CHANGE-ME"), key


def test_database_names_follow_the_prefix() -> None:
    env = {**_env(), "ANONLIB_DB_PREFIX": "site7"}
    compose = dc.load_compose(ROOT / "docker-compose.yml", env)
    databases = dc.environment(compose["services"]["postgres"])["ANONLIB_DATABASES"].split()
    assert databases == ["site7", "site7_intake", "site7_research"]
    assert dc.check_orthanc_service("orthanc-intake", compose, ROOT) == []


def test_missing_secret_is_refused_at_interpolation() -> None:
    env = {k: v for k, v in _env().items() if k != "ANONLIB_RESEARCH_READER_PASSWORD"}
    with pytest.raises(dc.InterpolationError, match="ANONLIB_RESEARCH_READER_PASSWORD"):
        dc.load_compose(ROOT / "docker-compose.yml", env)


def test_init_script_is_executable() -> None:
    assert os.access(INIT_SCRIPT, os.X_OK)


# -- the checks can fail -------------------------------------------------------------------------

def test_broken_mount_path_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "./env/orthanc/intake/intake.json:",
          "./env/orthanc/intake/intak.json:")
    _assert_caught(repo_copy, "intak.json does not exist", "env/orthanc/intake/intake.json is not mounted")


def test_unmounted_config_file_is_caught(repo_copy: Path) -> None:
    (repo_copy / "env/orthanc/research/extra.json").write_text('{"MaximumStorageSize": 0}')
    _assert_caught(repo_copy, "env/orthanc/research/extra.json is not mounted")


def test_unmounted_lua_script_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "      - ./env/orthanc/lua:/opt/anonlib/lua:ro\n", "")
    _assert_caught(repo_copy, "orthanc-intake: LuaScripts '/opt/anonlib/lua/roles.lua' is not a file")


def test_unset_variable_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "  ANONLIB_STABLE_AGE: ${ANONLIB_STABLE_AGE:-60}\n", "")
    _assert_caught(repo_copy, "variable(s) not set for this service: ANONLIB_STABLE_AGE",
                   "not valid JSON once substituted")


def test_bare_dollar_variable_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "env/orthanc/common/orthanc.json", '"${ANONLIB_AET}"', '"$ANONLIB_AET"')
    _assert_caught(repo_copy, "not $ANONLIB_AET")


def test_duplicate_top_level_key_is_caught(repo_copy: Path) -> None:
    (repo_copy / "env/orthanc/intake/more.json").write_text('{"StableAge": 5}')
    _edit(repo_copy / "docker-compose.yml", "      - ./env/orthanc/plugin:",
          "      - ./env/orthanc/intake/more.json:/etc/orthanc/more.json:ro\n"
          "      - ./env/orthanc/plugin:")
    _assert_caught(repo_copy, "top-level key 'StableAge' is in both")


def test_duplicate_key_inside_one_file_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "env/orthanc/research/research.json", '"OverwriteInstances": true',
          '"OverwriteInstances": true, "OverwriteInstances": false')
    _assert_caught(repo_copy, "repeated in one object: OverwriteInstances")


def test_invalid_json_value_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "env/docker/example.env", "ANONLIB_RESEARCH_PEERS='{}'", "ANONLIB_RESEARCH_PEERS=none")
    _assert_caught(repo_copy, "research.json: not valid JSON once substituted")


def test_literal_password_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml",
          "POSTGRES_PASSWORD: ${ANONLIB_PG_PASSWORD:?set ANONLIB_PG_PASSWORD (see env/docker/example.env)}",
          "POSTGRES_PASSWORD: CHANGE-ME-postgres-password")
    _assert_caught(repo_copy, "postgres: POSTGRES_PASSWORD is written literally",
                   "the value of ANONLIB_PG_PASSWORD appears literally")


def test_image_config_variable_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", '  POSTGRESQL_PLUGIN_ENABLED: "true"\n',
          '  POSTGRESQL_PLUGIN_ENABLED: "true"\n  ORTHANC__STABLE_AGE: "5"\n')
    _assert_caught(repo_copy, "ORTHANC__STABLE_AGE would merge keys")


def test_wrong_plugin_folder_and_missing_switch_are_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "ANONLIB_ORTHANC_PLUGINS: /usr/share/orthanc/plugins\n",
          "ANONLIB_ORTHANC_PLUGINS: /usr/share/orthanc/plugins-available\n")
    _edit(repo_copy / "docker-compose.yml", '      PYTHON_PLUGIN_ENABLED: "true"\n', "")
    _assert_caught(repo_copy, "is not in /usr/share/orthanc/plugins,",
                   "libOrthancPython.so is loaded but PYTHON_PLUGIN_ENABLED=true is not set")


def test_missing_plugin_script_and_site_packages_are_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "/opt/anonlib/plugin/anonlib_plugin.py",
          "/opt/anonlib/plugin/other.py")
    _assert_caught(repo_copy, "PythonScript /opt/anonlib/plugin/other.py is")
    _edit(repo_copy / "docker-compose.yml", "/opt/anonlib/plugin/other.py",
          "/opt/anonlib/plugin/anonlib_plugin.py")
    _edit(repo_copy / "env/docker/orthanc-intake.Dockerfile",
          "ENV ANONLIB_SITE_PACKAGES=/opt/anonlib/site-packages \\", "ENV \\")
    _assert_caught(repo_copy, "the plugin needs ANONLIB_SITE_PACKAGES")


def test_missing_tcp_nodelay_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", '      TCP_NODELAY: "1"\n      ANONLIB_DB_URL', "      ANONLIB_DB_URL")
    _assert_caught(repo_copy, "anonlib-worker: TCP_NODELAY=1 is not set")


def test_missing_worker_variable_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "      ANONLIB_RESEARCH_URL: http://orthanc-research:8042\n", "")
    _assert_caught(repo_copy, "anonlib-worker: ANONLIB_RESEARCH_URL is not set")


def test_worker_without_restart_policy_is_caught(repo_copy: Path) -> None:
    compose = (repo_copy / "docker-compose.yml").read_text()
    worker = compose.index("  anonlib-worker:")
    restart = compose.index("    restart: unless-stopped\n", worker)
    (repo_copy / "docker-compose.yml").write_text(compose[:restart] + compose[restart:].replace(
        "    restart: unless-stopped\n", "", 1))
    _assert_caught(repo_copy, "anonlib-worker: restart is None, not unless-stopped")


def test_missing_healthchecks_are_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "pg_isready", "true")
    script = repo_copy / "env/docker/orthanc-healthcheck.py"
    script.write_text(script.read_text().replace("/system", "/statistics"))
    _assert_caught(repo_copy, "postgres: healthcheck does not run pg_isready",
                   "orthanc-intake: healthcheck does not query /system")


def test_missing_dockerfile_and_copied_file_are_caught(repo_copy: Path) -> None:
    (repo_copy / "env/docker/Dockerfile").unlink()
    (repo_copy / "README.md").unlink()
    _assert_caught(repo_copy, "anonlib-worker: Dockerfile", "copies README.md, missing from the build context")


def test_unpinned_or_mismatched_orthanc_image_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "image: orthancteam/orthanc:25.2.0", "image: orthancteam/orthanc:latest")
    _assert_caught(repo_copy, "'orthancteam/orthanc:latest' is not a pinned", "use different images")


def test_published_database_and_unexecutable_init_script_are_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", "    image: postgres:16\n",
          '    image: postgres:16\n    ports:\n      - "5432:5432"\n')
    (repo_copy / "env/docker/postgres-init/10-anonlib-databases.sh").chmod(0o644)
    _assert_caught(repo_copy, "postgres: publishes ports", "is not executable")


def test_unquoted_boolean_is_caught(repo_copy: Path) -> None:
    _edit(repo_copy / "docker-compose.yml", 'GDCM_PLUGIN_ENABLED: "false"', "GDCM_PLUGIN_ENABLED: false")
    _assert_caught(repo_copy, "GDCM_PLUGIN_ENABLED is a bool")


def test_interpolation_follows_compose_rules() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert dc.interpolate("$$A ${A} $A ${B:-x} ${EMPTY:-y} ${EMPTY-z} ${A:+w} ${B}.", env) == "$A 1 1 x y  w ."
    with pytest.raises(dc.InterpolationError, match="B: needed"):
        dc.interpolate("${B:?needed}", env)
    assert dc.parse_env_file("K='{\"a\": 1}'\nL=v # note\n# c\n") == {"K": '{"a": 1}', "L": "v"}


# -- the healthcheck script against a fake Orthanc -----------------------------------------------

class _FakeOrthanc(BaseHTTPRequestHandler):
    name = "intake"
    auth = "Basic " + base64.b64encode(b"anonlib:secret-1").decode()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.headers.get("Authorization") != self.auth:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"Name": self.name if self.path == "/system" else "?"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_orthanc() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOrthanc)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("node, password, healthy", [
    ("intake", "secret-1", True),
    ("research", "secret-1", False),  # another Orthanc answering on that port
    ("intake", "wrong", False),       # 401
])
def test_healthcheck_script(fake_orthanc: int, node: str, password: str, healthy: bool) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "ANONLIB_HTTP_PORT": str(fake_orthanc),
           "ANONLIB_NODE_NAME": node, "ANONLIB_ORTHANC_USER": "anonlib", "ANONLIB_ORTHANC_PASSWORD": password}
    done = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True,
                          timeout=30)
    assert (done.returncode == 0) is healthy, done.stderr
    assert password not in done.stderr


def test_healthcheck_script_without_listener_or_environment() -> None:
    done = subprocess.run([sys.executable, str(HEALTHCHECK)], env={"PATH": os.environ.get("PATH", "")},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "ANONLIB_HTTP_PORT" in done.stderr


# -- the init script against the real PostgreSQL -------------------------------------------------

def test_init_script_creates_the_databases_once(pg_admin_url: str) -> None:
    from sqlalchemy.engine import make_url

    from tests.fixtures.pg import DATABASE_PREFIX, _admin_engine

    if shutil.which("psql") is None:
        pytest.fail("psql is not installed (env/setup installs postgresql)")
    admin = make_url(pg_admin_url)
    prefix = DATABASE_PREFIX + "docker_" + os.urandom(3).hex()
    names = [prefix, prefix + "_intake", prefix + "_research"]
    env = {"PATH": os.environ.get("PATH", ""), "PGHOST": admin.host or "127.0.0.1",
           "PGPORT": str(admin.port or 5432), "PGPASSWORD": admin.password or "",
           "POSTGRES_USER": admin.username or "postgres", "ANONLIB_DATABASES": " ".join(names)}
    engine = _admin_engine(pg_admin_url)
    try:
        for _ in range(2):  # the second run finds them and changes nothing
            done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
        with engine.connect() as conn:
            found = {r[0] for r in conn.execute(text("select datname from pg_database"))}
        assert set(names) <= found
    finally:
        engine.dispose()
        drop_databases(pg_admin_url, prefix)


# -- docker compose itself, when a client is installed -------------------------------------------

def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (no Docker engine needed)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANONLIB_", "COMPOSE_"))}

    def config(env_file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, "--env-file", str(env_file), "config", "-q"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    done = config(EXAMPLE_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    without_secret = tmp_path / "no-secret.env"
    without_secret.write_text("\n".join(line for line in EXAMPLE_ENV.read_text().splitlines()
                                        if not line.startswith("ANONLIB_PG_PASSWORD=")))
    done = config(without_secret)
    assert done.returncode != 0 and "ANONLIB_PG_PASSWORD" in done.stdout + done.stderr


def test_compose_file_is_plain_yaml_with_extension_fields_only() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(raw) - {"services", "volumes", "networks"} <= {k for k in raw if k.startswith("x-")}
