"""Faults on the engines, contained as TorchServe contains them: a dead LitAPI worker is
restarted and its requests answered "Worker died.", a hung handler answers at the response
timeout and the next request is served.

Every request goes to 127.0.0.1 only, bounded in count and time.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from handlerkit.run.child import EngineServer
from handlerkit.run.launcher import command_line, descendants
from tests.fixtures.torchserve_battery import send

pytestmark = [pytest.mark.engines]

FAULTY = Path(__file__).parents[1] / "fixtures" / "handlers" / "faulty.py"
TIMEOUT_S = 3
DIED = b'{\n  "code": 500,\n  "type": "InternalServerException",\n  "message": "Worker died."\n}\n'


def faulty_server(tmp_path_factory, engine: str) -> EngineServer:
    """The faulty handler on `engine`, with a short response timeout (start it with `with`)."""
    folder = tmp_path_factory.mktemp("faulty")
    (folder / "faulty.py").write_text(FAULTY.read_text())
    return EngineServer({"faulty": folder}, engine, handler="faulty.py", response_timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def litserve(tmp_path_factory):
    with faulty_server(tmp_path_factory, "litserve") as server:
        yield server


def post(server, body: bytes):
    return send(server, "POST", "/predictions/faulty", body)[:2]


def wait_until_served(server, within: float = 60) -> tuple:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = post(server, b"fine")
        if answer[0] == 200:
            return answer
        time.sleep(0.5)
    return answer


def litserve_workers(server) -> list[int]:
    """LitServe's inference workers: the serve command's spawned children (the model processes
    are their children)."""
    main = server.process.pid
    children = [pid for pid in descendants(main) if _parent(pid) == main]
    return [pid for pid in children if "spawn_main" in command_line(pid) and descendants(pid)]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_hung_handler_gets_torchservers_timeout_answer_and_the_next_request_is_served(litserve):
    started = time.monotonic()
    assert post(litserve, b"hang") == (500, DIED)  # TorchServe 0.12, measured: 500 at the timeout
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 15
    assert wait_until_served(litserve)[0] == 200


def test_killing_the_litserve_worker_mid_burst_answers_every_request_once(litserve):
    wait_until_served(litserve)
    [worker] = litserve_workers(litserve)
    with ThreadPoolExecutor(16) as pool:
        burst = [pool.submit(post, litserve, b"slow") for _ in range(300)]
        time.sleep(1.0)
        os.kill(worker, signal.SIGKILL)
        answers = [future.result(timeout=120) for future in burst]  # one answer each, no error
    statuses = sorted({status for status, _ in answers})
    assert set(statuses) <= {200, 500, 507}, statuses
    assert all(body.startswith(b"slow from") for status, body in answers if status == 200)
    died = [body for status, body in answers if status != 200]
    assert 0 < len(died) <= 16 and all(b"Worker died." in body for body in died)
    assert litserve.process.poll() is None  # the server is still up
    assert wait_until_served(litserve)[0] == 200
    assert litserve_workers(litserve) != [worker]  # a new worker serves


# ---- limits while reading (TorchServe 0.12, measured: 413 with an empty body for a body over
# 6,553,500 bytes, declared or streamed; 400 "Invalid HTTP message." for headers over 8 KiB)
INVALID = (
    b'{\n  "code": 400,\n  "type": "BadRequestException",\n'
    b'  "message": "Invalid HTTP message."\n}\n'
)
HEAD = b"POST /predictions/faulty HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def raw_reply(server, head: bytes, chunks=(), wait: float = 10) -> bytes:
    """Send a request head and then `chunks` (until the server closes), and read the reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed: the rest is never read
            pass
        try:
            return sock.recv(4096)
        except OSError:
            return b""


def streamed(total: int, size: int = 1 << 20):
    """A chunked body of `total` bytes, made as it is sent."""
    chunk = b"%x\r\n" % size + b"x" * size + b"\r\n"
    for _ in range(total // size):
        yield chunk
    yield b"0\r\n\r\n"


def listening_pid(port: int, among: set[int]) -> int:
    """The process (of `among`) that listens on 127.0.0.1:`port`, read from /proc (Linux)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            inodes.add(fields[9])
    for pid in among:
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        if {f"socket:[{inode}]" for inode in inodes} & links:
            return pid
    raise LookupError(f"nothing listens on {port}")


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def test_a_declared_length_over_the_limit_is_answered_413_before_the_body(litserve):
    reply = raw_reply(litserve, HEAD + b"Content-Length: 1000000000\r\n\r\n", wait=5)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert wait_until_served(litserve)[0] == 200


def test_a_client_that_sends_a_body_just_over_the_limit_reads_the_413(litserve):
    assert post(litserve, b"x" * (6553500 + 1)) == (413, b"")  # no reset: the rest is drained
    assert post(litserve, b"fine")[0] == 200


def test_a_1_gb_streamed_body_gets_413_without_being_buffered(litserve):
    api = listening_pid(litserve.port, descendants(litserve.process.pid) | {litserve.process.pid})
    idle = memory_kib(api, "VmRSS")
    started = time.monotonic()
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    reply = raw_reply(litserve, head, streamed(1 << 30), wait=60)
    assert reply.startswith(b"HTTP/1.1 413 ") and time.monotonic() - started < 60
    assert memory_kib(api, "VmHWM") - idle < 100 * 1024  # peak RSS: under 100 MB above idle
    assert wait_until_served(litserve)[0] == 200


def test_headers_over_8_kib_get_torchservers_400(litserve):
    assert send(litserve, "POST", "/predictions/faulty", b"fine", {"X-Big": "a" * 8000})[0] == 200
    big = send(litserve, "POST", "/predictions/faulty", b"fine", {"X-Big": "a" * 9000})
    assert big[:2] == (400, INVALID)
    many = {f"X-H{i}": "v" for i in range(2000)}
    assert send(litserve, "POST", "/predictions/faulty", b"fine", many)[:2] == (400, INVALID)
    huge = raw_reply(litserve, HEAD + b"X-Huge: " + b"a" * (1 << 20) + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 400 ")  # uvicorn's parser stops buffering at 32 KiB


# ---- nothing left behind
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_a_handler_is_busy_leaves_no_process(tmp_path, signum):
    (tmp_path / "faulty.py").write_text(FAULTY.read_text())
    server = EngineServer({"faulty": tmp_path}, "litserve", handler="faulty.py")
    server.start()
    try:
        started = descendants(server.process.pid)
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(post, server, b"hang")
            time.sleep(2)  # the handler is inside time.sleep(3600) now
            server.process.send_signal(signum)
            server.process.wait(60)
            with pytest.raises(Exception):  # noqa: B017 - the connection goes with the server
                busy.result(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_running(pid) for pid in started):
            time.sleep(0.2)
        left = {pid: command_line(pid) for pid in started if _running(pid)}
        assert left == {}
    finally:
        server.stop()


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
