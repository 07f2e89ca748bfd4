"""TorchServe's own API test cases (pytorch/serve test/postman, adapted) replayed against servers.

Against a real TorchServe 0.12 (`-m serve`) they prove the adapted data right; against
`OfflineServer`, LitServe and Ray Serve (`-m engines`) they measure how far their inference API is
from TorchServe's (they have no management or metrics API yet: those steps are skipped).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from api_replay import (
    Outcome,
    Target,
    check,
    closed_port,
    load_cases,
    real_torchserve,
    replay,
    senders_for,
    summary,
)

REPO = Path(__file__).resolve().parents[2]
CASES = load_cases()
INFERENCE_SUITES = ("inference", "kserve_v1", "kserve_v2")


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory) -> Path:
    """The model store every suite's `url=` names: .mar files built from this repo's data."""
    from handlerkit.serve import archive

    store = tmp_path_factory.mktemp("reference_store")
    for mar, recipe in CASES["models"].items():
        folder = REPO / recipe["folder"]
        if recipe.get("torchscript"):
            folder = _scripted_copy(folder, tmp_path_factory.mktemp("scripted"))
        archive(folder, store, mar.removesuffix(".mar"), handler=str(REPO / recipe["handler"]))
    return store


def _scripted_copy(folder: Path, into: Path) -> Path:
    """The folder's eager model as TorchScript (no model.py: TorchServe then loads the .pt)."""
    from handlerkit.loading import load_eager_model

    net = load_eager_model(folder / "model.py", folder / "mnist_cnn.pt", torch.device("cpu"))
    torch.jit.script(net.eval()).save(str(into / "mnist_cnn.pt"))
    return into


def _problems(outcomes: list[Outcome]) -> list[Outcome]:
    print(summary(outcomes))  # shown with -rA or -s: the per-suite numbers
    return [o for o in outcomes if o.problem]


@pytest.mark.serve
@pytest.mark.parametrize("suite", list(CASES["suites"]))
def test_torchserve_answers_as_the_reference(suite, reference_store):
    settings = CASES["suites"][suite]["config"]
    with real_torchserve(reference_store, settings) as server:
        target = Target(server.inference_url, server.management_url, server.metrics_url)
        outcomes = replay(
            CASES["suites"][suite]["steps"], senders_for(target), {"closed_port": closed_port()}
        )
    assert not _problems(outcomes), summary(outcomes)


@pytest.mark.parametrize("suite", INFERENCE_SUITES)
def test_offline_server_answers_as_the_reference(suite, reference_store):
    """Inference steps only; the models the suite registers are loaded at start instead, with
    the suite's `service_envelope`."""
    from handlerkit.offline import OfflineServer

    steps = CASES["suites"][suite]["steps"]
    envelope = CASES["suites"][suite]["config"].get("service_envelope")
    with OfflineServer(_registered(steps, reference_store), service_envelope=envelope) as server:

        def send(method, path, body, headers):
            answer = server.request(method, path, body, headers)
            return answer.status, answer.body

        outcomes = replay(steps, {"inference": send, "management": None, "metrics": None})
    assert not _problems(outcomes), summary(outcomes)


ENGINE_RUNS = [
    pytest.param(engine, suite, marks=pytest.mark.engines)
    for engine in ("litserve", "ray")
    for suite in INFERENCE_SUITES
]


@pytest.mark.parametrize("engine, suite", ENGINE_RUNS)
def test_engines_answer_as_the_reference(engine, suite, reference_store):
    """`python -m handlerkit serve --engine ENGINE` with the suite's `service_envelope`: the
    inference steps over HTTP (no management or metrics API yet: those steps are skipped)."""
    from handlerkit.run.child import EngineServer

    pytest.importorskip(engine)
    steps = CASES["suites"][suite]["steps"]
    envelope = CASES["suites"][suite]["config"].get("service_envelope")
    models = _registered(steps, reference_store)
    with EngineServer(models, engine, service_envelope=envelope) as server:
        senders = senders_for(Target(server.url))
        outcomes = replay(steps, senders)
    assert not _problems(outcomes), summary(outcomes)


def _registered(steps, store: Path) -> dict[str, Path]:
    """The models a suite's steps register: name -> its .mar in the store."""
    return {s["register"]["name"]: store / s["register"]["mar"] for s in steps if "register" in s}


def test_a_wrong_status_or_body_fails():
    """The checks can fail: a status or body other than the reference's is reported."""
    step = CASES["suites"]["inference"]["steps"][1]
    assert check(step, 200, step["expect"]["value"].encode()) is None
    assert "status 404" in check(step, 404, b"{}")
    assert "not the reference's" in check(step, 200, b"7")
    outcomes = replay([step], {"inference": lambda *request: (500, b"")})
    assert "status 500" in outcomes[0].problem and summary(outcomes).startswith(
        "0 passed, 1 failed"
    )


def test_cases_name_their_source_and_what_was_left_out():
    assert CASES["source"]["repository"] == "pytorch/serve" and len(CASES["source"]["commit"]) == 40
    steps = [step for suite in CASES["suites"].values() for step in suite["steps"]]
    assert all(step["source"].split("[")[0] in str(CASES["source"]["files"]) for step in steps)
    assert all("torchserve.pytorch.org" not in s["path"] and "amazonaws" not in s["path"]
               for s in steps)  # fmt: skip
    assert all(entry["why"] for entry in CASES["left_out"])
