"""TorchServe's logs: the log4j2 config that writes them, and finding a handler's traceback.

`TorchServe` reads these files to say why it did not start or why a model's worker died.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

# What a Python worker prints when it could not load the model (TorchServe's model_service_worker).
DEATH_MARKERS = ("Backend worker process died", "Failed to load model")
# Where each log line goes (read from $LOG_LOCATION, the server's log_dir): a package data file.
LOG_CONFIG = Path(__file__).with_name("log4j2.xml")
# Printed by the Java frontend once the REST and the gRPC endpoints are all bound.
STARTED_LINE = "Model server started."


def worker_failure(model_log: Path, ts_log: Path, name: str, offsets: tuple[int, int]) -> str:
    """Return the handler's traceback once the logs show its worker died, else ''."""
    if not _worker_died(model_log, ts_log, name, offsets):
        return ""
    deadline = time.monotonic() + 2  # the worker's stdout reaches the log a bit later
    while True:
        lines = _model_lines(model_log, name, offsets[0])
        traceback = _handler_traceback(lines)
        if traceback or time.monotonic() > deadline:
            return traceback or "\n".join(lines[-20:]) or "(the worker printed nothing)"
        time.sleep(0.2)


def _worker_died(model_log: Path, ts_log: Path, name: str, offsets: tuple[int, int]) -> bool:
    """True when the worker or the frontend logged that loading ``name`` failed."""
    lines = _model_lines(model_log, name, offsets[0])
    if any(marker in line for line in lines for marker in DEATH_MARKERS):
        return True
    return f"Load model failed: {name}," in read_from(ts_log, offsets[1])


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_from(path: Path, offset: int) -> str:
    """Return what was written to a log file after byte ``offset``."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _model_lines(path: Path, name: str, offset: int) -> list[str]:
    """Return the messages of ``name``'s workers written to the model log after ``offset``."""
    text = read_from(path, offset)
    thread = re.compile(rf"\bW-\d+-{re.escape(name)}_\S*-std(?:out|err)\b.*? - (.*)$")
    messages = []
    for line in text.splitlines():
        match = thread.search(line)
        if match:
            messages.append(match.group(1))
    return messages


def _handler_traceback(lines: Sequence[str]) -> str:
    """Return the last traceback that reaches code outside TorchServe (the handler, torch...).

    A worker that fails to load logs the handler's traceback and then, often, a second one
    from TorchServe's own loop ("500 - Unknown exception"); the first is the one to show.
    """
    blocks = _tracebacks(lines)
    outside = [block for block in blocks if _reaches_outside_torchserve(block)]
    return (outside or blocks or [""])[-1]


def _tracebacks(lines: Sequence[str]) -> list[str]:
    """Split log messages into Python tracebacks (header line to exception line)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            current = [line]
            blocks.append(current)
        elif current is not None:
            current.append(line)
            if line and not line.startswith((" ", "\t")):
                current = None  # the exception line ends the traceback
    return ["\n".join(block) for block in blocks]


def _reaches_outside_torchserve(traceback: str) -> bool:
    files = re.findall(r'^\s*File "([^"]+)"', traceback, flags=re.MULTILINE)
    return any(not f.startswith("<") and not re.search(r"[\\/]ts[\\/]", f) for f in files)
