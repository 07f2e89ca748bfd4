"""Faults on the engines, contained as TorchServe contains them: a dead LitAPI worker is
restarted and its requests answered "Worker died.", a hung handler answers at the response
timeout and the next request is served.

Every request goes to 127.0.0.1 only, bounded in count and time.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchserve_battery import send

from handlerkit.engines import EngineServer
from handlerkit.engines.process import _cmdline, descendants

pytestmark = [pytest.mark.engines]

FAULTY = Path(__file__).parent / "handlers" / "faulty.py"
TIMEOUT_S = 3
DIED = b'{\n  "code": 500,\n  "type": "InternalServerException",\n  "message": "Worker died."\n}\n'


@pytest.fixture(scope="module")
def litserve(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faulty")
    (folder / "faulty.py").write_text(FAULTY.read_text())
    with EngineServer(
        {"faulty": folder}, "litserve", handler="faulty.py", response_timeout=TIMEOUT_S
    ) as server:
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
    return [pid for pid in children if "spawn_main" in _cmdline(pid) and descendants(pid)]


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
