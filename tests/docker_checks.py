"""Static checks of docker-compose.yml and the files it uses, for machines without Docker.

Each ``check_*`` function takes the parsed compose file (values interpolated the way compose
does, from an env file such as ``env/docker/example.env``) and the folder the compose file is in,
and returns a list of problems (empty = fine), so the tests can run them on the real files and on
broken copies. ``all_problems`` runs them all.

What is modelled from the orthancteam/orthanc image (tags 24.x-25.x): it reads every
``/etc/orthanc/*.json``, substitutes ``$VAR``/``${VAR}`` from the container environment
(unset = empty), merges the files and starts Orthanc on the result; it moves the .so files of the
plugins it enables into ``/usr/share/orthanc/plugins/``; ``ORTHANC__*`` and ``ORTHANC_JSON``
variables are merged into the configuration too.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ORTHANC_CONFIG_DIR = PurePosixPath("/etc/orthanc")
IMAGE_PLUGIN_DIR = "/usr/share/orthanc/plugins"
IMAGE_PLUGIN_LIBS = {  # the .so files of the plugins we use, as the image names them
    "libOrthancPostgreSQLIndex.so": "POSTGRESQL_PLUGIN_ENABLED",
    "libOrthancPostgreSQLStorage.so": "POSTGRESQL_PLUGIN_ENABLED",
    "libOrthancPython.so": "PYTHON_PLUGIN_ENABLED",
}
REQUIRED_SERVICES = ("postgres", "orthanc-intake", "orthanc-research", "anonlib-worker")
ORTHANC_ROLES = {"orthanc-intake": "intake", "orthanc-research": "research"}
WORKER_VARIABLES = ("ANONLIB_DB_URL", "ANONLIB_INTAKE_URL", "ANONLIB_RESEARCH_URL",
                    "ANONLIB_INTAKE_USER", "ANONLIB_INTAKE_PASSWORD", "ANONLIB_RESEARCH_USER",
                    "ANONLIB_RESEARCH_PASSWORD", "ANONLIB_EXPORT_DIR", "ANONLIB_STABLE_AGE")
PUBLISHING_SERVICES = ("orthanc-intake", "orthanc-research")
POSTGRES_IMAGE = re.compile(r"^postgres:(15|16)(\.\d+)?(-[a-z0-9]+)?$")
ORTHANC_IMAGE = re.compile(r"^orthancteam/orthanc:(2[45])\.\d{1,2}\.\d+$")
WORKER_BASE = re.compile(r"^python:3\.11-slim(-[a-z]+)?$")


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is unset, or the syntax is not understood."""


# -- env files and interpolation ----------------------------------------------------------------

def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose reads them ('...' verbatim, "..." and bare values trimmed)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"env file line {number}: not KEY=VALUE: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key] = value
    return values


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>(?:[^{}]|\{[^{}]*\})*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``,
    ``${VAR:?msg}``, ``${VAR?msg}``, ``${VAR:+x}``, ``${VAR+x}``. Unset plain variables are ''."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return interpolate(arg, env) if empty else str(value)
        if op in ("?", ":?"):
            if empty:
                raise InterpolationError(f"{name}: {arg or 'required variable is not set'}")
            return str(value)
        if op in ("+", ":+"):
            return "" if empty else interpolate(arg, env)
        return "" if value is None else value

    if "${" in _VARIABLE.sub("", text):
        raise InterpolationError(f"cannot interpolate {text!r}")
    return _VARIABLE.sub(replace, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not the keys) of a parsed YAML tree."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def load_compose(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved, values interpolated from ``env``."""
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return dict(interpolate_tree(raw, env))


# -- pieces of a service ------------------------------------------------------------------------

@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    bind: bool


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    found = []
    for item in service.get("volumes", []) or []:
        if isinstance(item, str):
            parts = item.split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            bind = source.startswith((".", "/", "~"))
        else:
            source, target = str(item.get("source", "")), str(item["target"])
            read_only = bool(item.get("read_only", False))
            bind = item.get("type") == "bind"
        found.append(Mount(source, target, read_only, bind))
    return found


def environment(service: Mapping[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (entry.partition("=") for entry in env)
        return {key: value if sep else None for key, sep, value in pairs}
    return dict(env)


def host_path(root: Path, source: str) -> Path:
    return (root / source).resolve() if not source.startswith("/") else Path(source)


def container_file(service: Mapping[str, Any], root: Path, target: str) -> Path | None:
    """The host file that a bind mount of the service shows at container path ``target``."""
    wanted = PurePosixPath(target)
    for mount in mounts(service):
        inside = PurePosixPath(mount.target)
        if mount.bind and (wanted == inside or inside in wanted.parents):
            return host_path(root, mount.source) / wanted.relative_to(inside)
    return None


def dockerfile_of(service: Mapping[str, Any], root: Path) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = host_path(root, str(build.get("context", ".")))
    return context / str(build.get("dockerfile", "Dockerfile"))


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    pairs = []
    for statement in joined:
        word, _, rest = statement.partition(" ")
        pairs.append((word.upper(), rest.strip()))
    return pairs


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """Variables set by ``ENV`` (``ENV K=V K2=V2`` and the legacy ``ENV K V``)."""
    values: dict[str, str] = {}
    for word, rest in _instructions(dockerfile):
        if word != "ENV":
            continue
        if "=" not in rest.split(" ", 1)[0]:
            key, _, value = rest.partition(" ")
            values[key] = value.strip()
            continue
        for token in shlex.split(rest):
            key, _, value = token.partition("=")
            values[key] = value
    return values


def dockerfile_base(dockerfile: Path, build_args: Mapping[str, str]) -> str:
    """The image of the first ``FROM``, ``ARG`` defaults and build args substituted."""
    args: dict[str, str] = {}
    for word, rest in _instructions(dockerfile):
        if word == "ARG":
            key, _, default = rest.partition("=")
            args[key.strip()] = build_args.get(key.strip(), default.strip())
        elif word == "FROM":
            return interpolate(rest.split()[0], args)
    return ""


# -- the checks ---------------------------------------------------------------------------------

def check_services(compose: Mapping[str, Any]) -> list[str]:
    services = compose.get("services") or {}
    return [f"service {name} is missing" for name in REQUIRED_SERVICES if name not in services]


def check_bind_mounts(compose: Mapping[str, Any], root: Path) -> list[str]:
    problems = []
    named = set((compose.get("volumes") or {}).keys())
    for name, service in (compose.get("services") or {}).items():
        targets: set[str] = set()
        for mount in mounts(service):
            if mount.target in targets:
                problems.append(f"{name}: two mounts on {mount.target}")
            targets.add(mount.target)
            if not mount.bind:
                if mount.source and mount.source not in named:
                    problems.append(f"{name}: volume {mount.source!r} is not declared under volumes:")
                continue
            path = host_path(root, mount.source)
            if not path.is_relative_to(root.resolve()):
                problems.append(f"{name}: bind mount {mount.source} is outside the repository")
            elif not path.exists():
                problems.append(f"{name}: bind-mounted {mount.source} does not exist")
            if not mount.read_only:
                problems.append(f"{name}: bind mount {mount.source} should be read-only (:ro)")
    return problems


def _config_mounts(service: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """Container path -> host file of the JSON files mounted into /etc/orthanc/."""
    found = {}
    for mount in mounts(service):
        target = PurePosixPath(mount.target)
        if mount.bind and target.parent == ORTHANC_CONFIG_DIR and target.suffix == ".json":
            found[str(target)] = host_path(root, mount.source)
    return found


def json_variables(text: str) -> set[str]:
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"key(s) repeated in one object: {', '.join(repeated)}")
    return dict(pairs)


def orthanc_configuration(service: Mapping[str, Any], root: Path,
                          image_env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The configuration Orthanc gets in this service (files substituted and merged the way the
    image does, except that a repeated top-level key is reported instead of overwritten)."""
    env = {**image_env, **{k: "" if v is None else str(v) for k, v in environment(service).items()}}
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems = []
    for target, path in sorted(_config_mounts(service, root).items()):
        if not path.is_file():
            problems.append(f"{target}: {path} is not a file")
            continue
        text = path.read_text()
        odd = [m.group(0) for m in _VARIABLE.finditer(text) if m["bare"] or m["escaped"] or m["op"]]
        if odd:
            problems.append(f"{path.name}: write ${{VAR}}, not {odd[0]} (Orthanc expands only ${{VAR}})")
        missing = sorted(json_variables(text) - env.keys())
        if missing:
            problems.append(f"{path.name}: variable(s) not set for this service: {', '.join(missing)}")
        try:
            data = json.loads(interpolate(text, env), object_pairs_hook=_no_duplicate_keys)
        except (ValueError, InterpolationError) as exc:
            problems.append(f"{path.name}: not valid JSON once substituted: {exc}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path.name}: not a JSON object")
            continue
        for key, value in data.items():
            if key in merged:
                problems.append(f"top-level key {key!r} is in both {origin[key]} and {path.name} "
                                "(Orthanc refuses to start)")
            merged[key], origin[key] = value, path.name
    return merged, problems


def check_orthanc_service(name: str, compose: Mapping[str, Any], root: Path) -> list[str]:
    services = compose.get("services") or {}
    service = services.get(name)
    if service is None:
        return [f"service {name} is missing"]
    role = ORTHANC_ROLES[name]
    dockerfile = dockerfile_of(service, root)
    image_env = dockerfile_env(dockerfile) if dockerfile and dockerfile.is_file() else {}
    env = {k: "" if v is None else str(v) for k, v in environment(service).items()}
    all_env = {**image_env, **env}
    problems = []

    expected = {p.resolve() for d in ("common", role) for p in (root / "env/orthanc" / d).glob("*.json")}
    mounted = set(_config_mounts(service, root).values())
    problems += [f"{name}: {p.relative_to(root.resolve())} is not mounted into {ORTHANC_CONFIG_DIR}"
                 for p in sorted(expected - mounted)]
    problems += [f"{name}: {p} is mounted but is not one of env/orthanc/common|{role}/*.json"
                 for p in sorted(mounted - expected)]

    config, found = orthanc_configuration(service, root, image_env)
    problems += [f"{name}: {problem}" for problem in found]

    image_config = sorted(k for k in env if k.startswith("ORTHANC__") or k == "ORTHANC_JSON")
    if image_config:
        problems.append(f"{name}: {', '.join(image_config)} would merge keys into our configuration")
    if env.get("TCP_NODELAY") != "1":
        problems.append(f"{name}: TCP_NODELAY=1 is not set")

    plugins = config.get("Plugins", [])
    for plugin in plugins:
        path = PurePosixPath(str(plugin))
        if str(path.parent) != IMAGE_PLUGIN_DIR:
            problems.append(f"{name}: plugin {plugin} is not in {IMAGE_PLUGIN_DIR}, where the image "
                            "puts the plugins it enables")
        switch = IMAGE_PLUGIN_LIBS.get(path.name)
        if switch is None:
            problems.append(f"{name}: plugin {path.name} is not one the image is known to ship")
        elif env.get(switch) != "true":
            problems.append(f"{name}: {path.name} is loaded but {switch}=true is not set")
    for switch in ("GDCM_PLUGIN_ENABLED", "ORTHANC_EXPLORER_2_ENABLED"):
        if env.get(switch) != "false":
            problems.append(f"{name}: {switch}=false is not set (the image enables it by default)")

    script = config.get("PythonScript")
    if any(str(p).endswith("libOrthancPython.so") for p in plugins):
        host = container_file(service, root, str(script)) if script else None
        if host is None:
            problems.append(f"{name}: PythonScript {script!r} is not inside a bind mount")
        elif not host.is_file():
            problems.append(f"{name}: PythonScript {script} is {host}, which does not exist")
        else:
            for variable in re.findall(r"os\.environ\[\s*[\"']([A-Za-z_0-9]+)[\"']\s*\]", host.read_text()):
                if variable not in all_env:
                    problems.append(f"{name}: the plugin needs {variable}, set neither in compose "
                                    "nor by the image's Dockerfile")

    for lua in config.get("LuaScripts", []):
        host = container_file(service, root, str(lua))
        if host is None or not host.is_file():
            problems.append(f"{name}: LuaScripts {lua!r} is not a file inside a bind mount")

    storage = config.get("StorageDirectory")
    if storage and not any(m.target == storage and not m.bind for m in mounts(service)):
        problems.append(f"{name}: StorageDirectory {storage} is not a named volume")
    pg = config.get("PostgreSQL", {})
    if pg:
        if pg.get("Host") not in services:
            problems.append(f"{name}: PostgreSQL Host {pg.get('Host')!r} is not a compose service")
        databases = str(environment(services.get("postgres", {})).get("ANONLIB_DATABASES", "")).split()
        if pg.get("Database") not in databases:
            problems.append(f"{name}: database {pg.get('Database')!r} is not created by postgres "
                            f"(ANONLIB_DATABASES={' '.join(databases)})")
    listening = {config.get("HttpPort"), config.get("DicomPort")}
    for port in service.get("ports", []) or []:
        inside = int(str(port).split("/")[0].rsplit(":", 1)[-1])
        if inside not in listening:
            problems.append(f"{name}: published port {port} is not a port Orthanc listens on")
    return problems


def check_secrets(compose_text: str, env: Mapping[str, str]) -> list[str]:
    """No password written in the compose file: secret-looking variables come from ``${...}``,
    and no secret value of the env file appears in the file."""
    problems = []
    secrets = {k: v for k, v in env.items() if "PASSWORD" in k or "SECRET" in k}
    raw = yaml.safe_load(compose_text)
    for name, service in (raw.get("services") or {}).items():
        for key, value in environment(service).items():
            secretish = "PASSWORD" in key or "SECRET" in key or re.search(r"://[^/@\s]+:[^/@\s]+@", str(value))
            if secretish and value is not None and "${" not in str(value):
                problems.append(f"{name}: {key} is written literally in the compose file")
    for key, value in secrets.items():
        if value and value in compose_text:
            problems.append(f"the value of {key} appears literally in the compose file")
    return problems


def check_healthchecks(compose: Mapping[str, Any], root: Path) -> list[str]:
    problems = []
    services = compose.get("services") or {}
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test")
        words = [test] if isinstance(test, str) else list(test or [])
        command = " ".join(str(w) for w in words)
        if name == "postgres":
            if "pg_isready" not in command:
                problems.append("postgres: healthcheck does not run pg_isready")
        elif name in ORTHANC_ROLES:
            texts = [command]
            for word in words:
                host = container_file(service, root, str(word)) if str(word).startswith("/") else None
                if host is not None and host.is_file():
                    texts.append(host.read_text())
            if not any("/system" in text for text in texts):
                problems.append(f"{name}: healthcheck does not query /system")
    return problems


def check_dockerfiles(compose: Mapping[str, Any], root: Path) -> list[str]:
    problems = []
    services = compose.get("services") or {}
    orthanc_images = set()
    for name, service in services.items():
        dockerfile = dockerfile_of(service, root)
        if dockerfile is None:
            if name in ORTHANC_ROLES:
                orthanc_images.add(str(service.get("image", "")))
            continue
        if not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
            continue
        context = host_path(root, str(service["build"].get("context", ".")))
        for word, rest in _instructions(dockerfile):
            if word in ("COPY", "ADD") and "--from" not in rest:
                sources = [s for s in shlex.split(rest) if not s.startswith("--")][:-1]
                problems += [f"{name}: {dockerfile.name} copies {s}, missing from the build context"
                             for s in sources if not (context / s).exists()]
        args = {str(k): str(v) for k, v in (service["build"].get("args") or {}).items()}
        base = dockerfile_base(dockerfile, args)
        if name in ORTHANC_ROLES:
            orthanc_images.add(base)
        if name == "anonlib-worker":
            if not WORKER_BASE.match(base):
                problems.append(f"{name}: built FROM {base}, expected python:3.11-slim")
            cmd = next((rest for word, rest in _instructions(dockerfile) if word == "CMD"), "")
            if "anonlib" not in cmd or "worker" not in cmd:
                problems.append(f"{name}: the image does not run `anonlib worker`")
    for image in sorted(orthanc_images):
        if not ORTHANC_IMAGE.match(image):
            problems.append(f"Orthanc image {image!r} is not a pinned orthancteam/orthanc 24.x/25.x tag")
    if len(orthanc_images) > 1:
        problems.append(f"the Orthanc nodes use different images: {', '.join(sorted(orthanc_images))}")
    return problems


def check_worker(compose: Mapping[str, Any]) -> list[str]:
    services = compose.get("services") or {}
    worker = services.get("anonlib-worker")
    if worker is None:
        return ["service anonlib-worker is missing"]
    env = environment(worker)
    problems = [f"anonlib-worker: {v} is not set" for v in WORKER_VARIABLES if not env.get(v)]
    if str(env.get("TCP_NODELAY")) != "1":
        problems.append("anonlib-worker: TCP_NODELAY=1 is not set")
    if worker.get("restart") not in ("unless-stopped", "always"):  # the watchdog exits; docker restarts
        problems.append(f"anonlib-worker: restart is {worker.get('restart')!r}, not unless-stopped")
    export = env.get("ANONLIB_EXPORT_DIR")
    if export and not any(m.target == export and not m.bind for m in mounts(worker)):
        problems.append(f"anonlib-worker: ANONLIB_EXPORT_DIR {export} is not a named (shared) volume")
    for variable, service in (("ANONLIB_INTAKE_URL", "orthanc-intake"),
                              ("ANONLIB_RESEARCH_URL", "orthanc-research")):
        node_env = environment(services.get(service, {}))
        expected = f"http://{service}:{node_env.get('ANONLIB_HTTP_PORT')}"
        if env.get(variable) != expected:
            problems.append(f"anonlib-worker: {variable} is {env.get(variable)!r}, expected {expected}")
    return problems


def check_postgres(compose: Mapping[str, Any], root: Path) -> list[str]:
    service = (compose.get("services") or {}).get("postgres")
    if service is None:
        return ["service postgres is missing"]
    problems = []
    if not POSTGRES_IMAGE.match(str(service.get("image", ""))):
        problems.append(f"postgres: image {service.get('image')!r} is not postgres:15 or 16")
    init = container_file(service, root, "/docker-entrypoint-initdb.d")
    if init is None or not init.is_dir():
        problems.append("postgres: no init folder mounted on /docker-entrypoint-initdb.d")
    else:
        scripts = sorted(init.glob("*.sh"))
        if not scripts:
            problems.append(f"postgres: no *.sh script in {init}")
        problems += [f"postgres: {s.name} is not executable (the image would source it)"
                     for s in scripts if not s.stat().st_mode & 0o111]
    databases = str(environment(service).get("ANONLIB_DATABASES", "")).split()
    if len(databases) != 3 or len(set(databases)) != 3:
        problems.append(f"postgres: ANONLIB_DATABASES should name 3 databases, not {databases}")
    return problems


def check_ports(compose: Mapping[str, Any]) -> list[str]:
    return [f"{name}: publishes ports; only {', '.join(PUBLISHING_SERVICES)} should"
            for name, service in (compose.get("services") or {}).items()
            if service.get("ports") and name not in PUBLISHING_SERVICES]


def check_environment_types(compose: Mapping[str, Any]) -> list[str]:
    """compose accepts strings and numbers only (a YAML true/false is rejected)."""
    return [f"{name}: {key} is a {type(value).__name__}; quote it"
            for name, service in (compose.get("services") or {}).items()
            for key, value in environment(service).items()
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float))]


def all_problems(root: Path, env_file: Path) -> list[str]:
    """Every check on ``root/docker-compose.yml``, interpolated from ``env_file``."""
    compose_path = root / "docker-compose.yml"
    env = parse_env_file(env_file.read_text())
    try:
        compose = load_compose(compose_path, env)
    except InterpolationError as exc:
        return [f"compose interpolation: {exc}"]
    problems = check_services(compose)
    problems += check_bind_mounts(compose, root)
    for name in ORTHANC_ROLES:
        problems += check_orthanc_service(name, compose, root)
    problems += check_secrets(compose_path.read_text(), env)
    problems += check_healthchecks(compose, root)
    problems += check_dockerfiles(compose, root)
    problems += check_worker(compose)
    problems += check_postgres(compose, root)
    problems += check_ports(compose)
    problems += check_environment_types(compose)
    return problems
