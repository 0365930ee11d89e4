""":func:`anonlib.orthanc.client.call` against a real HTTP server that drops the first request
it gets without answering (what an Orthanc closing an idle keep-alive connection does to a
request sent on it): a read is sent again once and answers; a write is not sent twice (its retry
is the job queue's); a server that keeps dropping is a TransientError naming node and operation."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from anonlib.orthanc.client import TransientError, call

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]'


class DroppingServer:
    """Accepts connections; closes the first ``drops`` requests without a byte of answer."""

    def __init__(self, drops: int) -> None:
        self.drops, self.requests = drops, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if not conn.recv(65536):
                    continue
                self.requests += 1
                if self.requests > self.drops:
                    conn.sendall(ANSWER)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def test_a_read_dropped_once_is_sent_again_and_answers(client: httpx.Client) -> None:
    server = DroppingServer(drops=1)

    def get_studies_id_instances(study: str) -> httpx.Response:
        return client.get(f"{server.url}/studies/{study}/instances")

    assert call("dest", "list instances", get_studies_id_instances, "abc") == []
    assert server.requests == 2


def test_a_write_dropped_is_not_sent_twice(client: httpx.Client) -> None:
    server = DroppingServer(drops=1)

    def post_instances(body: bytes) -> httpx.Response:
        return client.post(f"{server.url}/instances", content=body)

    with pytest.raises(TransientError, match=r"^dest: upload: RemoteProtocolError$"):
        call("dest", "upload", post_instances, b"DICM")
    assert server.requests == 1


def test_a_read_dropped_twice_is_transient(client: httpx.Client) -> None:
    server = DroppingServer(drops=2)

    def get_studies_id_instances(study: str) -> httpx.Response:
        return client.get(f"{server.url}/studies/{study}/instances")

    with pytest.raises(TransientError, match=r"^dest: list instances: RemoteProtocolError$"):
        call("dest", "list instances", get_studies_id_instances, "abc")
    assert server.requests == 2
