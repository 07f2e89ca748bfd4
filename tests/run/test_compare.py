"""`python -m handlerkit compare` reports where two servers' answers differ, and exits non-zero.

Two small HTTP servers on 127.0.0.1 stand in for TorchServe and an engine: one pair answers
alike, another differs on purpose (a planted difference), so the command's table and exit code
are checked without Java; test_differential compares real servers with the same code.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from handlerkit.__main__ import main
from handlerkit.run.compare import compare, first_difference, generated, load_requests
from handlerkit.run.generated_requests import Request


def _server(planted: bool):
    """A server that answers every request with its method, path and body length; with
    `planted`, a multipart request gets 500 and a different body."""

    class Answer(BaseHTTPRequestHandler):
        def __getattr__(self, name):  # do_GET, do_POST, do_FOO, ...: one answer for all
            if name.startswith("do_"):
                return self._answer
            raise AttributeError(name)

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, text = 200, f"{self.command} {self.path} {len(body)}"
            if planted and "multipart" in (self.headers.get("Content-Type") or "").lower():
                status, text = 500, f"planted {text}"
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers():
    started = [_server(False), _server(False), _server(True)]
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


def test_equal_servers_exit_0(servers, capsys):
    assert main(["compare", servers[0], servers[1], "--generated", "60"]) == 0
    out = capsys.readouterr().out
    assert "0 of 60 answers differ" in out
    assert "p95 ms" in out and "req/s" in out


def test_a_planted_difference_is_reported_and_exits_1(servers, capsys, tmp_path):
    code = main(["compare", servers[0], servers[2], "--generated", "60", "--save", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "[multipart]: 200 vs 500, bytes differ at 0" in out
    multipart = sum(r.kind == "multipart" for r in generated(60))
    assert f"{multipart} of 60 answers differ" in out
    saved = load_requests(tmp_path)  # each difference kept as a .http file, read back
    assert len(saved) == multipart and all(r.kind == "file" for r in saved)


def test_request_files_are_sent_as_written(servers, tmp_path, capsys):
    (tmp_path / "a.http").write_bytes(b"PUT /predictions/m?x=1\r\nX-A: 1\r\n\r\nbody")
    (tmp_path / "b.http").write_bytes(b"GET /ping\n\n")
    requests = load_requests(tmp_path)
    assert requests[0] == Request("PUT", "/predictions/m?x=1", (("X-A", "1"),), b"body", "file")
    comparison = compare(servers[0], servers[1], requests, concurrency=2)
    assert [r.body for r in comparison.first] == [b"PUT /predictions/m?x=1 4", b"GET /ping 0"]
    assert main(["compare", servers[0], servers[2], "--requests", str(tmp_path)]) == 0


def test_bad_arguments_exit_2(capsys):
    assert main(["compare", "http://127.0.0.1:1"]) == 2
    assert main(["compare", "http://127.0.0.1:1", "http://127.0.0.1:2"]) == 2  # nothing to send


def test_the_generated_requests_replay_from_their_seed():
    assert generated(30, seed=5) == generated(30, seed=5) != generated(30, seed=6)
    assert Request.from_http(generated(1, seed=3)[0].to_http()).target == generated(1, 3)[0].target


def test_first_difference():
    assert first_difference(b"abc", b"abc") is None
    assert first_difference(b"abc", b"abd") == 2
    assert first_difference(b"ab", b"abc") == 2
