"""Replay each suite twice on fresh real TorchServes and save what they answered (for make_cases).

Usage: python tests/reference_api/record_bodies.py OUT.json   (about 5 minutes on 2 cores)
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import test_replay as t  # noqa: E402
from api_replay import Target, closed_port, load_cases, replay, senders_for, summary  # noqa: E402

cases = load_cases()
from handlerkit.serve import archive  # noqa: E402

store = Path(tempfile.mkdtemp())
for mar, recipe in cases["models"].items():
    folder = t.REPO / recipe["folder"]
    if recipe.get("torchscript"):
        folder = t._scripted_copy(folder, Path(tempfile.mkdtemp()))
    archive(folder, store, mar.removesuffix(".mar"), handler=str(t.REPO / recipe["handler"]))
runs = {}
for suite, spec in cases["suites"].items():
    runs[suite] = []
    for _ in range(2):
        with t.real_torchserve(store, spec["config"]) as server:
            target = Target(server.inference_url, server.management_url, server.metrics_url)
            out = replay(spec["steps"], senders_for(target), {"closed_port": closed_port()})
        print(suite, summary(out), flush=True)
        runs[suite].append([(o.status, o.body.decode("utf-8", "replace")) for o in out])
json.dump(runs, open(sys.argv[1], "w"))
