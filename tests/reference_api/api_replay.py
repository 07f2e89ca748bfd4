"""Replay TorchServe's own API test cases (adapted in cases.json) against any server.

A server is a `Target`: the base URL of its inference, management and metrics APIs (None where it
has none), or any `send` function with the same shape, such as one that calls `OfflineServer`.
`real_torchserve` starts the reference: a real TorchServe 0.12 with a suite's settings.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CASES = HERE / "cases.json"


@dataclass(frozen=True)
class Target:
    """Base URLs of a server's three APIs, e.g. `Target("http://127.0.0.1:8080", ...)`."""

    inference: str | None
    management: str | None = None
    metrics: str | None = None

    def base(self, api: str) -> str | None:
        return getattr(self, api)


@dataclass
class Outcome:
    """What one step got: its status and body, and what was wrong (None: as the reference)."""

    step: Mapping[str, Any]
    status: int | None = None
    body: bytes = b""
    problem: str | None = None
    skipped: str | None = None

    def __str__(self) -> str:
        state = f"skipped ({self.skipped})" if self.skipped else (self.problem or "ok")
        return f"{self.step['source']} {self.step['test']!r}: {state}"


# (method, path, body, headers) -> (status, body)
Send = Callable[[str, str, bytes, Mapping[str, str]], tuple[int, bytes]]


def load_cases(path: Path = CASES) -> dict:
    """The adapted reference data: source, models to build, suites of steps, cases left out."""
    return json.loads(path.read_text())


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released), for downloads that must fail."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_sender(base: str, timeout: float = 180) -> Send:
    """A `Send` that speaks HTTP to `base` (`http://127.0.0.1:PORT`)."""
    parts = urllib.parse.urlsplit(base)

    def send(method: str, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            connection.request(method, path, body=body or None, headers=dict(headers))
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    return send


def replay(
    steps: Iterable[Mapping[str, Any]],
    senders: Mapping[str, Send | None],
    substitutions: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Send every step in order to the API it names; check its status and, if given, its body.

    Args:
        steps: A suite's steps from cases.json.
        senders: API name (`inference`, `management`, `metrics`) -> `Send`, or None where the
            server has no such API (its steps are skipped, not failed).
        substitutions: `{{name}}` placeholders in paths, e.g. `closed_port`.
    """
    outcomes = []
    for step in steps:
        send = senders.get(step["api"])
        if send is None:
            outcomes.append(Outcome(step, skipped=f"no {step['api']} API"))
            continue
        path = _substitute(step["path"], substitutions or {})
        body = (HERE / step["body_file"]).read_bytes() if "body_file" in step else b""
        try:
            status, answer = send(step["method"], path, body, {})
        except OSError as error:
            outcomes.append(Outcome(step, problem=f"no answer: {error}"))
            continue
        outcomes.append(Outcome(step, status, answer, check(step, status, answer)))
    return outcomes


def senders_for(target: Target, timeout: float = 180) -> dict[str, Send | None]:
    """One HTTP `Send` per API the target has."""
    apis = ("inference", "management", "metrics")
    return {
        api: http_sender(target.base(api), timeout) if target.base(api) else None for api in apis
    }


def check(step: Mapping[str, Any], status: int, body: bytes) -> str | None:
    """What differs from the reference: the status, then the body where it is deterministic."""
    if status not in step["status"]:
        return f"status {status}, expected {step['status']}: {body[:300]!r}"
    expect = step.get("expect")
    if expect is None:
        return None
    kind, value = expect["kind"], expect["value"]
    if kind == "text":
        ok = body.decode("utf-8", "replace") == value
    elif kind == "regex":
        ok = re.search(value, body.decode("utf-8", "replace")) is not None
    else:
        try:
            got = json.loads(body)
        except ValueError:
            return f"body is not JSON: {body[:300]!r}"
        if kind == "json":
            ok = got == value
        elif kind == "json_shape":
            ok = _shape(got) == _shape(value)
        else:  # json_structure: keys, lengths and types; every value blanked
            ok = structure(got) == value
    return (
        None if ok else f"body {body[:300]!r} is not the reference's ({kind}: {str(value)[:200]})"
    )


def summary(outcomes: list[Outcome]) -> str:
    """`N passed, M failed, K skipped` and one line per failure."""
    failed = [o for o in outcomes if o.problem]
    skipped = [o for o in outcomes if o.skipped]
    passed = len(outcomes) - len(failed) - len(skipped)
    lines = [f"{passed} passed, {len(failed)} failed, {len(skipped)} skipped"]
    return "\n".join(lines + [f"  FAIL {o}" for o in failed])


def structure(value: Any) -> Any:
    """A JSON value with every scalar replaced by its type's name: what stays when ids vary."""
    if isinstance(value, dict):
        return {key: structure(item) for key, item in value.items()}
    if isinstance(value, list):
        return [structure(item) for item in value]
    return type(value).__name__


@contextlib.contextmanager
def real_torchserve(store: Path, settings: dict[str, str]):
    """A real TorchServe whose config.properties ends with `settings` (a later key wins)."""
    from handlerkit.serve import TorchServe

    with TorchServe(store, {}, startup_timeout=180, config=settings) as server:
        yield server


def _substitute(path: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: str(values[m.group(1)]), path)


def _shape(value: Any) -> Any:
    """The structure of a JSON value with its numbers blanked: keys, lengths and types."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else value
