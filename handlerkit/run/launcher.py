"""One launcher for every server we run in a child process: TorchServe, `handlerkit serve`.

A server starts in a process group of its own on free ports of 127.0.0.1, is waited for until it
answers, and is stopped (asked first, then killed with all it started); at exit, every one still up.
"""

from __future__ import annotations

import atexit
import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from .models import HOST

LEFTOVER_GRACE_S = 5.0  # helpers such as multiprocessing's tracker exit a moment after the server
KILL_WAIT_S = 10.0


class Server(Protocol):
    """What owns a started process: `stop()` ends it (and runs at exit if nothing else did)."""

    def stop(self) -> None: ...


_LIVE: set[Server] = set()


class Exited(Exception):
    """The process ended before it answered; `code` is its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exited with code {code}")
        self.code = code


def start(
    server: Server,
    command: list[str],
    output: IO[bytes],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Run `command` in a process group of its own, stdout and stderr to `output`.

    `server.stop()` runs when Python exits, unless `stop(server, ...)` ran first."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    _LIVE.add(server)
    return process


def wait_until_up(
    process: subprocess.Popen, ready: Callable[[], bool], timeout: float, poll: float = 0.5
) -> None:
    """Call `ready()` every `poll` seconds until it says the server is up.

    Raises:
        Exited: The process ended first.
        TimeoutError: `timeout` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Exited(process.returncode)
        if ready():
            return
        time.sleep(poll)
    raise TimeoutError(f"not up within {timeout:.0f} s")


def answers(url: str, token: str | None = None, timeout: float = 5) -> bool:
    """True when `GET url` answers 200 (with TorchServe's bearer `token` when given)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection.request("GET", parts.path, headers=headers)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def stop(
    server: Server,
    process: subprocess.Popen,
    ask: signal.Signals,
    grace: float,
    ask_children: bool = False,
) -> dict[int, str]:
    """Stop a started process and all it started; return what was left to kill (pid -> command).

    `ask` (SIGINT, Ctrl-C; or SIGTERM) goes to the process, or with `ask_children` to the processes
    it started (TorchServe's Java and workers: the `torchserve` script reaps them and exits, leaving
    no zombie to init). After `grace` seconds for the process and `LEFTOVER_GRACE_S` for the rest,
    SIGKILL ends what is left, its whole process group included.
    """
    _LIVE.discard(server)
    started = family(process.pid)  # read now: once they exit, /proc forgets who they were
    if process.poll() is None:
        for pid in started if ask_children and started else {process.pid}:
            _signal(pid, ask)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _wait_until(lambda: not any(alive(pid) for pid in started), LEFTOVER_GRACE_S)
    still = started | group_members(process.pid) | {process.pid}
    leftovers = {pid: command_line(pid) for pid in still if alive(pid)}
    for pid in leftovers:
        _signal(pid, signal.SIGKILL)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    _wait_until(lambda: not group_members(process.pid), KILL_WAIT_S)
    return leftovers


@atexit.register
def _stop_all() -> None:
    """Safety net: stop every server still running when Python exits."""
    for server in list(_LIVE):
        server.stop()


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports free on 127.0.0.1 now."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def port_in_use(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


# ---- processes, read from /proc (Linux) ------------------------------------------------------
def family(pid: int) -> set[int]:
    """What `pid` started and still runs: its descendants, and the rest of its process group."""
    return (descendants(pid) | group_members(pid)) - {pid}


def descendants(pid: int) -> set[int]:
    """The processes below `pid` (children, their children, ...)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def group_members(group: int) -> set[int]:
    """The live (non-zombie) processes of a process group."""
    if not Path("/proc").is_dir():  # macOS: only ask whether the group still exists
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return set()
        return {group}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.add(int(stat.parent.name))
    return members


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    """The command line `pid` runs ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _wait_until(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass
