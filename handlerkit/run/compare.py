"""`python -m handlerkit compare`: the same requests to two servers, their answers side by side.

For people who move from TorchServe: point it at their TorchServe and at a handlerkit engine (or
let it start both for a `.mar`), send requests they keep as `.http` files and/or generated ones,
and read which answers differ (status, first differing bytes) and how fast each server answered.
"""

from __future__ import annotations

import http.client
import random
import statistics
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..serving.frontend import Answer
from .generated_requests import Request, generate

TIMEOUT_S = 120


@dataclass(frozen=True)
class Difference:
    """One request whose two replies differ."""

    request: Request
    first: Answer
    second: Answer

    def describe(self, width: int = 40) -> str:
        at = first_difference(self.first.body, self.second.body)
        a, b = self.first, self.second
        where = f"bytes differ at {at}" if at is not None else "same body"
        if a.content_type != b.content_type:
            where += f"; content-type {a.content_type!r} vs {b.content_type!r}"
        start = max(0, (at or 0) - 10)
        return (
            f"{self.request.method} {_short(self.request.target)} [{self.request.kind}]: "
            f"{a.status} vs {b.status}, {where}\n"
            f"    first:  {a.body[start : start + width]!r}\n"
            f"    second: {b.body[start : start + width]!r}"
        )


def first_difference(a: bytes, b: bytes) -> int | None:
    """The offset of the first byte where `a` and `b` differ (None when equal)."""
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def send(url: str, request: Request, timeout: float = TIMEOUT_S) -> Answer:
    """Send `request` to the server at `url` (http://host:port) exactly as written: its headers
    and a Content-Length, nothing else but Host."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        connection.putrequest(request.method, request.target, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value.encode("latin-1", "replace"))
        connection.putheader("Content-Length", str(len(request.body)))
        connection.endheaders(request.body)
        response = connection.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, body, headers, seconds=time.perf_counter() - started)
    except (OSError, http.client.HTTPException) as error:  # the server closed or refused
        error_name = type(error).__name__.encode()
        return Answer(0, error_name, seconds=time.perf_counter() - started)
    finally:
        connection.close()


def send_all(url: str, requests: list[Request], concurrency: int = 1) -> tuple[list[Answer], float]:
    """Every request to one server, `concurrency` at a time; the replies in order, and seconds."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda r: send(url, r), requests))
    return replies, time.perf_counter() - started


def load_requests(folder: str | Path) -> list[Request]:
    """The `.http` files in `folder` (sorted by name), each one request."""
    paths = sorted(Path(folder).glob("*.http"))
    if not paths:
        raise FileNotFoundError(f"{folder} holds no .http files: write one request per file")
    return [Request.from_http(p.read_bytes(), note=p.name) for p in paths]


def generated(count: int, seed: int = 0, models: tuple[str, ...] = ("echo",)) -> list[Request]:
    """`count` generated requests for `models`, the same ones for the same seed."""
    rng = random.Random(seed)
    return [generate(rng, models) for _ in range(count)]


@dataclass
class Comparison:
    """Both servers' replies to the same requests, and how long each server took."""

    requests: list[Request]
    first: list[Answer]
    second: list[Answer]
    seconds: tuple[float, float]
    concurrency: int

    @property
    def differences(self) -> list[Difference]:
        return [
            Difference(r, a, b)
            for r, a, b in zip(self.requests, self.first, self.second)
            if not a.same_as(b)
        ]

    def table(self, names: tuple[str, str] = ("first", "second"), shown: int = 20) -> str:
        """Requests and equal answers per kind, each difference, and both servers' speed."""
        total, equal = Counter(), Counter()
        for r, a, b in zip(self.requests, self.first, self.second):
            total[r.kind] += 1
            equal[r.kind] += a.same_as(b)
        lines = [f"{'kind':<10} {'requests':>8} {'equal':>8}"]
        lines += [f"{k:<10} {total[k]:>8} {equal[k]:>8}" for k in sorted(total)]
        lines.append(f"{'all':<10} {sum(total.values()):>8} {sum(equal.values()):>8}")
        lines.append("")
        lines.append(f"{'server':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}  (concurrency "
                     f"{self.concurrency})")  # fmt: skip
        for name, replies, seconds in zip(names, (self.first, self.second), self.seconds):
            p50, p95 = _percentiles([r.seconds for r in replies])
            rate = len(replies) / seconds if seconds else 0.0
            lines.append(f"{name:<10} {rate:>8.1f} {p50 * 1000:>8.2f} {p95 * 1000:>8.2f}")
        differences = self.differences
        lines.append("")
        lines.append(f"{len(differences)} of {len(self.requests)} answers differ")
        lines += [d.describe() for d in differences[:shown]]
        if len(differences) > shown:
            lines.append(f"... and {len(differences) - shown} more")
        return "\n".join(lines)


def compare(
    first_url: str, second_url: str, requests: list[Request], concurrency: int = 1
) -> Comparison:
    """Send `requests` to both servers (one after the other, at the same concurrency)."""
    first, first_s = send_all(first_url, requests, concurrency)
    second, second_s = send_all(second_url, requests, concurrency)
    return Comparison(requests, first, second, (first_s, second_s), concurrency)


def _percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# ---- command line --------------------------------------------------------------------------
def add_parser(commands) -> None:
    """`compare FIRST_URL SECOND_URL` or `compare --mar MODEL.mar --engine ENGINE`."""
    cmd = commands.add_parser(
        "compare",
        help="send the same requests to two servers and show where their answers differ",
        description=__doc__.splitlines()[0],
    )
    cmd.add_argument("urls", nargs="*", help="two base URLs, e.g. http://127.0.0.1:8080")
    cmd.add_argument("--requests", metavar="DIR", help="a folder of .http request files")
    cmd.add_argument("--generated", type=int, default=0, metavar="N", help="N generated requests")
    cmd.add_argument("--seed", type=int, default=0, help="the generated requests' seed")
    cmd.add_argument("--model", action="append", help="model name(s) the generated requests go to")
    cmd.add_argument("--concurrency", type=int, default=1, help="requests in flight per server")
    cmd.add_argument("--mar", help="start a real TorchServe and --engine for this .mar/folder")
    cmd.add_argument("--engine", default="litserve", help="with --mar: litserve, ray, torchserve")
    cmd.add_argument("--save", metavar="DIR", help="write each differing request as a .http file")
    cmd.set_defaults(run=run)


def run(args) -> int:
    """The command: 0 when every answer is equal, 1 when any differs, 2 on bad arguments."""
    if bool(args.mar) == (len(args.urls) == 2) or (args.urls and len(args.urls) != 2):
        print("give two URLs, or --mar MODEL (and --engine) to start both servers")
        return 2
    models = tuple(args.model or ([Path(args.mar).stem] if args.mar else ["echo"]))
    requests = load_requests(args.requests) if args.requests else []
    requests += generated(args.generated, args.seed, models)
    if not requests:
        print("nothing to send: give --requests DIR and/or --generated N")
        return 2
    if args.mar:
        comparison, names = _compare_started(args.mar, models[0], args.engine, requests, args)
    else:
        comparison = compare(args.urls[0], args.urls[1], requests, args.concurrency)
        names = ("first", "second")
    print(comparison.table(names))
    if args.save:
        _save(comparison.differences, Path(args.save))
    return 1 if comparison.differences else 0


def _compare_started(source: str, name: str, engine: str, requests, args):
    """A real TorchServe and `engine` both serving `source` as `name`, compared."""
    from .child import EngineServer
    from .torchserve.server import TorchServe

    with (
        TorchServe.for_folder(source, name)
        if Path(source).is_dir()
        else _torchserve_for_mar(source, name) as reference,
        EngineServer({name: source}, engine) as other,
    ):
        comparison = compare(reference.inference_url, other.url, requests, args.concurrency)
    return comparison, ("torchserve", engine)


def _torchserve_for_mar(mar: str, name: str):
    from .torchserve.server import TorchServe

    path = Path(mar).resolve()
    return TorchServe(path.parent, {name: path.name})


def _save(differences: list[Difference], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, difference in enumerate(differences):
        (folder / f"difference-{i:04d}.http").write_bytes(difference.request.to_http())
    print(f"{len(differences)} differing requests written to {folder}")
