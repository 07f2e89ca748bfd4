"""Ray Serve on a cluster the command joins (`--address`): the road past one machine.

The cluster is started as a team starts one (`ray start --head` on one node, `ray start
--address` on another; here both nodes run on this machine, each with one CPU);
`python -m handlerkit serve ... --engine ray --address` joins it with two replicas, one per node,
answers like the offline server, and on Ctrl-C removes only its own application: the cluster and
its other work go on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from handlerkit import samples
from handlerkit.offline import OfflineServer
from handlerkit.run.child import EngineServer
from handlerkit.run.launcher import free_ports, port_in_use
from tests.fixtures.torchserve_battery import send

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.engines

RAY = Path(sys.executable).with_name("ray")
DIGITS = [samples.digit_png(i) for i in (0, 5, 10, 15)]  # held-out digits


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of two nodes with one CPU each, on this machine: (address, temp folder).

    Each node is started as on its own machine (`ray start --head`, then `ray start --address`),
    each in its own process group, so that only they are stopped.
    """
    temp = tempfile.mkdtemp(prefix="hk-rc-")  # short: Ray's socket paths must fit 107 bytes
    port = free_ports(1)[0]
    common = ["--block", "--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    head_command = [str(RAY), "start", "--head", f"--port={port}", f"--temp-dir={temp}"]
    head_command += ["--include-dashboard=false", "--dashboard-host=127.0.0.1", *common]
    node_command = [str(RAY), "start", f"--address=127.0.0.1:{port}", *common]
    log = open(Path(temp) / "ray-start.log", "wb")  # noqa: SIM115 - closed below
    nodes = []
    try:
        nodes.append(_start(head_command, log))
        _wait_for_port(port, nodes[0], temp)
        nodes.append(_start(node_command, log, RAY_AUTH_MODE="token"))  # as `ray start` sends it
        _wait_for_nodes(f"127.0.0.1:{port}", 2)
        yield f"127.0.0.1:{port}", temp
    finally:
        for node in reversed(nodes):
            _stop_group(node, temp)
        log.close()
        subprocess.run(["rm", "-rf", temp], check=False)


def test_serve_joins_a_running_cluster_and_answers_like_the_offline_server(cluster):
    address, _ = cluster
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        expected = [offline.predict("mnist", png, {"Content-Type": "image/png"}) for png in DIGITS]
    server = EngineServer({"mnist": samples.MNIST_DIR}, "ray", address=address, replicas=2)
    with server:
        answers = [
            send(server, "POST", "/predictions/mnist", png, {"Content-Type": "image/png"})
            for png in DIGITS
        ]
        replicas = _serve_status(address)["handlerkit"]
    for (status, body, _), want in zip(answers, expected, strict=True):
        assert status == want.status == 200
        got, wanted = json.loads(body), json.loads(want.body)
        # A joined cluster's replicas run torch with one thread per reserved CPU: the same
        # digit, and probabilities equal up to the last bits of float sums.
        assert _close(got, wanted), (got, wanted)
    # Each model replica reserves one CPU and each node has one: the two run on different
    # nodes; the frontend (TorchServe's API, on the serve command's node) reserves none.
    assert replicas == {"frontend": {"RUNNING": 1}, "model-mnist@1.0": {"RUNNING": 2}}
    assert server.leftovers == {}
    assert "handlerkit" not in _serve_status(address)  # its own application only is removed
    assert port_in_use(int(address.rsplit(":", 1)[1]))  # and the cluster is still up


def _close(got, wanted, tolerance: float = 1e-5) -> bool:
    """Equal JSON, numbers within `tolerance` (integers and strings exactly)."""
    if isinstance(wanted, dict):
        return got.keys() == wanted.keys() and all(_close(got[k], wanted[k]) for k in wanted)
    if isinstance(wanted, list):
        return len(got) == len(wanted) and all(map(_close, got, wanted))
    if isinstance(wanted, float):
        return isinstance(got, float) and abs(got - wanted) <= tolerance
    return type(got) is type(wanted) and got == wanted


def _serve_status(address: str) -> dict:
    """{application: {deployment: replica states}} on the cluster, asked from another process."""
    script = (
        "import json, ray\n"
        "from ray import serve\n"
        f"ray.init(address={address!r}, log_to_driver=False, logging_level='error')\n"
        "status = serve.status().applications\n"
        "print(json.dumps({app: {name: dict(d.replica_states) for name, d in s.deployments.items()}"
        " for app, s in status.items()}))\n"
    )
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start(command: list[str], log, **env) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **env),
    )


def _wait_for_nodes(address: str, count: int, timeout: float = 90) -> None:
    script = (
        "import ray\n"
        f"ray.init(address={address!r}, log_to_driver=False, logging_level='error')\n"
        "print(sum(node['Alive'] for node in ray.nodes()))\n"
    )
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
        )
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise TimeoutError(f"the cluster at {address} did not have {count} live nodes in {timeout} s")


def _wait_for_port(port: int, head: subprocess.Popen, temp: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited: {(Path(temp) / 'ray-start.log').read_text()}")
        if port_in_use(port):
            time.sleep(2)  # the raylet registers a moment after the GCS listens
            return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not listen on {port} within {timeout} s")


def _stop_group(head: subprocess.Popen, temp: str) -> None:
    """Stop this cluster only: its process group, then anything still naming its temp folder
    (`ray stop` would stop every Ray on the machine)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in _pids_naming(temp):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pids_naming(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids
