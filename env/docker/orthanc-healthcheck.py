"""Docker healthcheck of an anonlib Orthanc node: GET /system answers with the node's own Name.

Runs inside the orthancteam/orthanc containers with the image's python3 (standard library
only). It reads the same environment variables as the node's JSON configuration:
``ANONLIB_HTTP_PORT``, ``ANONLIB_NODE_NAME``, ``ANONLIB_ORTHANC_USER`` and
``ANONLIB_ORTHANC_PASSWORD``; ``ANONLIB_HEALTHCHECK_HOST`` (default 127.0.0.1) is for tests.
A bare HTTP 200 is not enough: another server could answer on that port, so the Name must
match. Exit status 0 = healthy, 1 = not.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5.0


def check(env: dict[str, str]) -> str | None:
    """``None`` when the node is healthy, else why not (never includes the password)."""
    url = f"http://{env.get('ANONLIB_HEALTHCHECK_HOST', '127.0.0.1')}:{env['ANONLIB_HTTP_PORT']}/system"
    token = base64.b64encode(f"{env['ANONLIB_ORTHANC_USER']}:{env['ANONLIB_ORTHANC_PASSWORD']}".encode())
    request = urllib.request.Request(url, headers={"Authorization": "Basic " + token.decode("ascii")})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            name = json.load(answer).get("Name")
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError, AttributeError) as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    if name != env["ANONLIB_NODE_NAME"]:
        return f"{url}: Name is {name!r}, expected {env['ANONLIB_NODE_NAME']!r}"
    return None


def main() -> int:
    try:
        problem = check(dict(os.environ))
    except KeyError as exc:
        problem = f"environment variable {exc.args[0]} is not set"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
