"""Soak: minutes of mixed good, garbage, hung and dying requests on each engine, then counts.

Each engine serves a handler that misbehaves on request (tests/fixtures/handlers/faulty.py) through
`python -m handlerkit serve` with a short `--response-timeout`. Client threads send a mix: good
rows, random garbage, rows that hang the handler, exit its process or SIGKILL it. Every request
must get one answer, and the right one: 200 with its own body for good and garbage rows, 500
"Worker died." for hung and exiting rows (at the timeout), 507 for killed ones (TorchServe 0.12).
Printed per engine: sent, answered, right, restarts (worker deaths answered), the server's memory
(its whole process tree, RSS) at start and end, and what it left after Ctrl-C (processes, files
in its TMPDIR). Only 127.0.0.1 is reached.
Run: .venv/bin/python bench/soak.py [--minutes 10] [--engines litserve ray torchserve]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from handlerkit.run.child import EngineServer
from handlerkit.run.launcher import descendants

FAULTY = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "handlers" / "faulty.py"
MIX = [("fine", 80), ("garbage", 14), ("hang", 1), ("exit", 3), ("kill", 2)]
EXPECTED = {"hang": 500, "exit": 500, "kill": 507}
TIMEOUT_S = 2


def one(port: int, kind: str) -> tuple[bool | None, int | None]:
    """Send one request: (True when the answer is right, False when wrong, None when none came;
    its status)."""
    body = os.urandom(64).hex().encode() if kind == "garbage" else kind.encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S + 120)
    try:
        connection.request("POST", "/predictions/faulty", body)
        response = connection.getresponse()
        status, text = response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        connection.close()
    if kind in EXPECTED:
        return status == EXPECTED[kind] and b"Worker died." in text, status
    return status == 200 and text.startswith(body + b" from "), status


def memory_mb(pid: int) -> float:
    total = 0
    for member in descendants(pid) | {pid}:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def soak(engine: str, minutes: float, threads: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="hk-soak-"))
    shutil.copy(FAULTY, folder / "faulty.py")
    temp = Path(tempfile.mkdtemp(prefix="hk-sk-"))  # the server's TMPDIR: what it leaves there
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    counts, lock = Counter(), threading.Lock()
    server = EngineServer(
        {"faulty": folder}, engine, handler="faulty.py", response_timeout=TIMEOUT_S
    )
    try:
        with temp_dir_for_children(temp):
            server.start()
        start_mb = memory_mb(server.process.pid)
        deadline = time.monotonic() + minutes * 60

        def client() -> None:
            while time.monotonic() < deadline:
                kind = random.choice(kinds)
                right, status = one(server.port, kind)
                with lock:
                    if not right:
                        counts[f"wrong: {kind} -> {status}"] += 1
                    counts["sent"] += 1
                    counts["answered"] += right is not None
                    counts["right"] += bool(right)
                    counts["restarts"] += bool(right) and kind in EXPECTED

        workers = [threading.Thread(target=client) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        end_mb = memory_mb(server.process.pid)
        alive = server.process.poll() is None
    finally:
        server.stop()  # Ctrl-C, as a person stops it; then what is left
        left = sorted(path.name for path in temp.iterdir())
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)
    return {
        **counts,
        "start_mb": start_mb,
        "end_mb": end_mb,
        "server_alive": alive,
        "processes_left": sorted(server.leftovers.values()),
        "files_left": left,
        "output": server.output(tail=30) if server.leftovers or left else "",
    }


@contextlib.contextmanager
def temp_dir_for_children(temp: Path):
    """TMPDIR set for the processes started inside (this one's temp folder is already chosen)."""
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(temp)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--engines", nargs="+", default=["torchserve", "litserve", "ray"])
    args = parser.parse_args()
    print(f"{'engine':<11} {'sent':>6} {'answered':>8} {'right':>6} {'restarts':>8} "
          f"{'MB start':>8} {'MB end':>7}  alive")  # fmt: skip
    for engine in args.engines:
        r = soak(engine, args.minutes, args.threads)
        print(f"{engine:<11} {r['sent']:>6} {r['answered']:>8} {r['right']:>6} "
              f"{r['restarts']:>8} {r['start_mb']:>8.0f} {r['end_mb']:>7.0f}  "
              f"{r['server_alive']}", flush=True)  # fmt: skip
        for key in sorted(k for k in r if k.startswith("wrong")):
            print(f"    {key}: {r[key]}")
        for key in ("processes_left", "files_left"):  # after Ctrl-C: what stop() found
            print(f"    {key}: {r[key]}")
        print(r["output"])


if __name__ == "__main__":
    main()
