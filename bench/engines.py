"""Served MNIST on TorchServe, LitServe and Ray Serve: throughput and p50/p95 at one concurrency.

Each engine in turn serves data/mnist through `python -m handlerkit serve`, alone on the machine,
with the same batch size and delay; after a warm-up, it answers `--rounds` bursts of the same
held-out digits from the same client. `--repeats` passes over the engines, each pass in another
order, and each engine is compared with TorchServe in the same pass: on a shared machine the
load drifts by tens of percent within minutes. Every worker runs torch with `--threads` threads
(OMP_NUM_THREADS, default 1): on a small shared machine, two OpenMP threads per worker
competing with the client and the engine's own processes make every engine's numbers erratic.
Run: .venv/bin/python bench/engines.py [--requests 500] [--rounds 3] [--repeats 3]
[--concurrency 64]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from handlerkit import samples
from handlerkit.run.child import EngineServer
from handlerkit.run.launcher import descendants

MNIST_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"
ENGINES = ("torchserve", "litserve", "ray")
CLIENT = "the client (this script, on the same cores)"


class Client:
    """One keep-alive HTTP connection per client thread; (status, seconds) per request."""

    def __init__(self, port: int) -> None:
        self.port, self.local = port, threading.local()

    def post(self, body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        for attempt in (1, 2):  # a server may close an idle keep-alive connection: reconnect
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = self.local.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=120
                )
            try:
                connection.request(
                    "POST", "/predictions/mnist", body, {"Content-Type": "image/png"}
                )
                response = connection.getresponse()
                response.read()
                return response.status, time.perf_counter() - started
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    return 0, time.perf_counter() - started
        raise AssertionError("unreachable")


def burst(client: Client, payloads: list[bytes], concurrency: int) -> tuple[float, list]:
    """All payloads at `concurrency` in flight: requests per second and (status, seconds) each."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client.post, payloads))
    return len(payloads) / (time.perf_counter() - started), results


def start(engine: str, args: argparse.Namespace) -> tuple[EngineServer, float]:
    started = time.perf_counter()
    server = EngineServer(
        {"mnist": MNIST_DIR},
        engine,
        batch_size=args.batch_size,
        max_batch_delay=args.delay,
        replicas=args.replicas,
    )
    return server.start(), time.perf_counter() - started


def measure(engine: str, args: argparse.Namespace, payloads: list[bytes]) -> dict:
    """Start one engine, warm it up, then `args.rounds` bursts; stop it. The raw numbers."""
    server, startup = start(engine, args)
    rates, results = [], []
    try:
        client = Client(server.port)
        burst(client, payloads[: 4 * args.concurrency], args.concurrency)  # warm-up
        pids = descendants(server.process.pid) | {server.process.pid}
        before, client_before = cpu_seconds(pids), time.process_time()
        for _ in range(args.rounds):
            rate, answers = burst(client, payloads, args.concurrency)
            rates.append(rate)
            results += answers
        after, client_after = cpu_seconds(pids), time.process_time()
    finally:
        server.stop()
    cpu = cpu_per_request(before, after, len(results))
    cpu[CLIENT] = 1000 * (client_after - client_before) / len(results)
    return {"rates": rates, "results": results, "startup": startup, "cpu_ms": cpu}


def run_all(args: argparse.Namespace, payloads: list[bytes]) -> dict[str, list[dict]]:
    """`args.repeats` passes over the engines, each pass in another order (the machine's load
    drifts: no engine always runs first); each engine's runs, by engine."""
    runs: dict[str, list[dict]] = {engine: [] for engine in args.engines}
    for repeat in range(args.repeats):
        shift = repeat % len(args.engines)
        for engine in args.engines[shift:] + args.engines[:shift]:
            runs[engine].append(measure(engine, args, payloads))
    return runs


def ratios(runs: dict[str, list[dict]], engine: str) -> list[float]:
    """Per pass: the engine's median req/s over TorchServe's in the same pass."""
    return [
        statistics.median(mine["rates"]) / statistics.median(ts["rates"])
        for mine, ts in zip(runs[engine], runs["torchserve"], strict=True)
    ]


def cpu_seconds(pids: set[int]) -> dict[int, tuple[str, float]]:
    """(name, user + system CPU seconds) of each live process, from /proc/PID/stat and cmdline."""
    ticks = os.sysconf("SC_CLK_TCK")
    found, parents = {}, {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        found[pid] = (process_name(argv), (int(fields[11]) + int(fields[12])) / ticks)
        parents[pid] = int(fields[1])
    for pid, (name, seconds) in found.items():  # a model's process: named by its engine's
        parent = found.get(parents[pid], ("", 0.0))[0]
        if parent.startswith("ray::") or (name == parent and name.startswith("LitServe")):
            found[pid] = (f"the model's process (ts worker), child of {parent}", seconds)
    return found


def process_name(argv: list[bytes]) -> str:
    """A short name: Ray's actor title, TorchServe's worker, the frontend, or the program."""
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if words[0].startswith("ray::"):
        return words[0].split(":")[0] + "::" + words[0].rsplit(":", 1)[-1].split(".")[0]
    program, text = Path(words[0]).name, " ".join(words)
    if program == "java":
        return "TorchServe's Java frontend"
    for marker, name in (
        ("model_service_worker", "TorchServe's Python worker"),
        ("spawn_main", "LitServe's inference worker (spawned)"),
        ("handlerkit serve", "the serve command (API server, launcher)"),
    ):
        if marker in text:
            return name
    return program


def cpu_per_request(before: dict, after: dict, requests: int) -> dict[str, float]:
    """CPU milliseconds per request spent by each kind of process during the bursts."""
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used = seconds - before.get(pid, (name, 0.0))[1]
        spent[name] = spent.get(name, 0.0) + 1000 * used / max(1, requests)
    return {name: ms for name, ms in sorted(spent.items(), key=lambda kv: -kv[1]) if ms >= 0.01}


def summary(engine: str, engine_runs: list[dict]) -> dict:
    """One engine's runs together: every burst's rate, every request's latency."""
    rates = [rate for run in engine_runs for rate in run["rates"]]
    results = [answer for run in engine_runs for answer in run["results"]]
    cuts = statistics.quantiles([seconds for _, seconds in results], n=100)
    cpu: dict[str, float] = {}
    for run in engine_runs:
        for name, ms in run["cpu_ms"].items():
            cpu[name] = cpu.get(name, 0.0) + ms / len(engine_runs)
    return {
        "engine": engine,
        "requests": len(results),
        "ok": sum(status == 200 for status, _ in results),
        "rps": statistics.median(rates),
        "rps_min": min(rates),
        "rps_max": max(rates),
        "p50_ms": 1000 * cuts[49],
        "p95_ms": 1000 * cuts[94],
        "startup_s": statistics.mean(run["startup"] for run in engine_runs),
        "cpu_ms": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
    }


def table(results: list[dict], runs: dict[str, list[dict]]) -> str:
    lines = [
        "| engine | requests | ok | req/s (median) | min..max | / TorchServe (median of passes) "
        "| each pass | p50 ms | p95 ms | start s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        each = ratios(runs, r["engine"]) if "torchserve" in runs else []
        ratio = f"{statistics.median(each):.2f}" if each else "-"
        lines.append(
            f"| {r['engine']} | {r['requests']} | {r['ok']} | {r['rps']:.0f} | "
            f"{r['rps_min']:.0f}..{r['rps_max']:.0f} | {ratio} | "
            f"{' '.join(f'{x:.2f}' for x in each) or '-'} | "
            f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['startup_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per burst")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per engine and pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the engines")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--batch-size", type=int, default=8, help="batch_size on every engine")
    parser.add_argument("--delay", type=int, default=50, help="max_batch_delay in ms")
    parser.add_argument("--replicas", type=int, default=1, help="workers/replicas of the model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the engines' workers inherit it
    held_out = [samples.digit_png(i) for i in range(0, 5000, 5)]  # never trained on
    payloads = [held_out[i % len(held_out)] for i in range(args.requests)]
    load_before = os.getloadavg()[0]
    runs = run_all(args, payloads)
    results = [summary(engine, engine_runs) for engine, engine_runs in runs.items()]
    print(
        f"MNIST served on 127.0.0.1, {args.replicas} worker(s)/replica(s), {os.cpu_count()} CPU "
        f"cores, {args.threads} torch thread(s) per worker, batch_size={args.batch_size}, "
        f"max_batch_delay={args.delay} ms, "
        f"concurrency={args.concurrency}, {args.repeats} passes over the engines (each in another "
        f"order) of {args.rounds} rounds of {args.requests} requests, "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print(table(results, runs))
    print("\nCPU per request, by process (ms; from /proc, during the timed bursts):\n")
    print("| engine | process | CPU ms / request |\n| --- | --- | ---: |")
    for r in results:
        engine_ms = {name: ms for name, ms in r["cpu_ms"].items() if name != CLIENT}
        for name, ms in engine_ms.items():
            print(f"| {r['engine']} | {name} | {ms:.2f} |")
        print(f"| {r['engine']} | **all of the engine** | **{sum(engine_ms.values()):.2f}** |")
        print(f"| {r['engine']} | {CLIENT} | {r['cpu_ms'][CLIENT]:.2f} |")


if __name__ == "__main__":
    main()
