"""Regenerate cases.json from pytorch/serve's postman data (a maintainer's tool, not a test).

Usage: python tests/reference_api/make_cases.py SERVE_GIT_DIR [RECORDED_RUNS.json]
SERVE_GIT_DIR is a clone (or bare mirror) of pytorch/serve; its HEAD is the source named in
cases.json. RECORDED_RUNS.json, written by record_bodies.py, adds the bodies two runs on fresh
TorchServe 0.12 servers agreed on. See README.md for what is adapted and why.
"""

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
R = sys.argv[1]
RUNS = sys.argv[2] if len(sys.argv) > 2 else None
COMMIT = subprocess.run(
    ["git", "-C", R, "rev-parse", "HEAD"], capture_output=True, text=True
).stdout.strip()


def load(name):
    return json.loads(
        subprocess.run(
            ["git", "-C", R, "show", f"HEAD:test/postman/{name}"], capture_output=True, text=True
        ).stdout
    )


env = {v["key"]: v["value"] for v in load("environment.json")["values"]}


def mar(text):
    return re.sub(r"\{\{(mar_path_[^}]+)\}\}", lambda m: env[m.group(1)], text)


steps = []
for i, case in enumerate(load("management_data.json")):
    path = mar(case["path"])
    step = {
        "test": case["test"],
        "source": f"management_data.json[{i}]",
        "api": "management",
        "method": case["METHOD"].upper(),
        "path": "/" + path,
        "status": [case.get("status_code", 200)],
    }
    if "https://torchserve.pytorch.org/mar_files/densenet161.mar" in path:
        step["path"] = step["path"].replace(
            "https://torchserve.pytorch.org/mar_files/",
            "http://127.0.0.1:{{closed_port}}/mar_files/",
        )
        step["adapted"] = (
            "URL host replaced by a closed loopback port: densenet161.mar is already in the "
            "model store, so TorchServe refuses it before any download (FileAlreadyExists)"
        )
    if "invalid-resnet-18.mar" in path:
        step["path"] = step["path"].replace(
            "https://torchserve.pytorch.org/mar_files/",
            "http://127.0.0.1:{{closed_port}}/mar_files/",
        )
        step["adapted"] = (
            "URL host replaced by a closed loopback port: the download fails as it does for a "
            "missing file on torchserve.pytorch.org, without leaving this machine"
        )
    if i == 31:
        step["status"] = [200, 409]
        step["flaky"] = (
            "TorchServe 0.12 answered 409 (ConflictStatusException: version 1.0 is already "
            "registered) in 1 of 4 runs on a loaded 2-core machine: the previous row's failed "
            "registration (500, startup_timeout=0, 3 workers) is unregistered by a callback "
            "that can lose the race; the source expects 200"
        )
    if case["METHOD"] != case["METHOD"].upper():
        step["adapted"] = (
            f"method written {case['METHOD']!r} in the source; postman sends it upper-case"
        )
    steps.append(step)
management = steps

METRICS = r'Requests2XX\{Level="Host",Hostname=".*",\} \d+\.\d+'


def model_steps(
    source,
    row,
    url,
    predict_path,
    explain_path=None,
    body_file=None,
    adapted=None,
    expect=None,
    expect_explain=None,
):
    name = row["model_name"]
    out = [
        {
            "test": f"Register {name}",
            "source": source,
            "api": "management",
            "method": "POST",
            "path": f"/models?url={url}&model_name={name}"
            f"&initial_workers={row['worker']}&synchronous={row['synchronous']}",
            "status": [200],
            "register": {"name": name, "mar": url},
        }
    ]
    if adapted:
        out[0]["adapted"] = adapted
    out.append(
        {
            "test": f"Inference {name}",
            "source": source,
            "api": "inference",
            "method": "POST",
            "path": predict_path.format(name=name),
            "status": [200],
            "body_file": body_file,
            "expect": expect,
        }
    )
    if explain_path:
        out.append(
            {
                "test": f"Explanations {name}",
                "source": source,
                "api": "inference",
                "method": "POST",
                "path": explain_path.format(name=name),
                "status": [200],
                "body_file": body_file,
                "expect": expect_explain,
            }
        )
    out.append(
        {
            "test": f"Unregister {name}",
            "source": source,
            "api": "management",
            "method": "DELETE",
            "path": f"/models/{name}",
            "status": [200, 201, 202],
        }
    )
    out.append(
        {
            "test": "Model Metrics",
            "source": source,
            "api": "metrics",
            "method": "GET",
            "path": "/metrics",
            "status": [200],
            "expect": {"kind": "regex", "value": METRICS},
        }
    )
    return out


inference, left_out = [], []
for i, row in enumerate(load("inference_data.json")):
    src = f"inference_data.json[{i}]"
    if row["model_name"] in ("mnist", "mnist_scripted"):
        local = row["url"].rsplit("/", 1)[1]
        inference += model_steps(
            src,
            row,
            local,
            "/predictions/{name}",
            body_file="inputs/0.png",
            adapted=f"url {row['url']} -> {local} in the local model store, built from data/mnist "
            "(handlerkit's MNIST weights, TorchServe's MNIST example handler)",
            expect={"kind": "text", "value": row["expected"]},
        )
    else:
        name = row["model_name"]
        kind = (
            "HuggingFace BERT"
            if "bert" in name
            else "torchvision COCO detection"
            if "rcnn" in name
            else "torchvision segmentation"
            if ("fcn" in name or "deeplab" in name)
            else "torchvision ImageNet"
        )
        where = (
            row["url"]
            if row["url"].startswith("http")
            else f"{row['url']} (TorchServe's CI downloads it)"
        )
        why = (
            f"needs the pretrained {kind} weights inside {where}; they are not on this machine "
            "and there is no network, and the expected answer holds only with those weights"
        )
        left_out.append({"source": src, "model": row["model_name"], "why": why})

kf_row = load("kf_inference_data.json")[0]
kserve_v1 = model_steps(
    "kf_inference_data.json[0]",
    kf_row,
    "mnist.mar",
    "/v1/models/{name}:predict",
    "/v1/models/{name}:explain",
    "inputs/mnist_v1.json",
    adapted="mnist.mar built from data/mnist (TorchServe's MNIST example handler)",
    expect={"kind": "json", "value": kf_row["expected"]},
    expect_explain={
        "kind": "json_shape",
        "value": kf_row["expected_explain"],
        "why": "data/mnist's weights are not TorchServe's mnist_cnn.pt: the attributions' "
        "shape is compared, not their values",
    },
)
v2_row = load("kfv2_inference_data.json")[0]
v2_predict = copy.deepcopy(v2_row["expected"])
v2_predict["outputs"][0]["data"] = [0]
v2_explain = copy.deepcopy(v2_row["expected_explain"])
v2_explain["outputs"][0]["shape"] = [784]
kserve_v2 = model_steps(
    "kfv2_inference_data.json[0]",
    v2_row,
    "mnist.mar",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/explain",
    "inputs/mnist_v2_tensor.json",
    adapted="mnist.mar built from data/mnist (TorchServe's MNIST example handler)",
    expect={
        "kind": "json",
        "value": v2_predict,
        "reference_value": v2_row["expected"],
        "why": "data/mnist's weights answer 0 on this unnormalized tensor where TorchServe's "
        "mnist_cnn.pt answered 1 (measured on TorchServe 0.12.0 with this store); the "
        "envelope is the reference's",
    },
    expect_explain={
        "kind": "json_shape",
        "value": v2_explain,
        "reference_value": v2_row["expected_explain"],
        "why": "data/mnist's weights are not TorchServe's mnist_cnn.pt: the attributions' "
        "shape is compared, not their values; TorchServe 0.12's kservev2 envelope "
        "flattens the output (shape [784], ts/torch_handler/request_envelope/"
        "kservev2.py), where the source file still says [1, 28, 28]",
    },
)

data = {
    "source": {
        "repository": "pytorch/serve",
        "commit": COMMIT,
        "files": [
            "test/postman/management_data.json",
            "test/postman/inference_data.json",
            "test/postman/kf_inference_data.json",
            "test/postman/kfv2_inference_data.json",
            "test/postman/environment.json",
            "test/postman/management_api_test_collection.json",
            "test/postman/inference_api_test_collection.json",
            "test/postman/kf_api_test_collection.json",
            "test/postman/kfv2_api_test_collection.json",
        ],
    },
    "about": "See README.md beside this file: how each postman data row became these steps.",
    "models": {
        m: {"folder": "data/mnist", "handler": "tests/fixtures/handlers/ts_mnist_handler.py"}
        for m in [
            "squeezenet1_1.mar",
            "mnist.mar",
            "densenet161.mar",
            "resnet-152-batch.mar",
            "resnet-18.mar",
            "mnist_v2.mar",
        ]
    }
    | {
        "mnist_scripted_v2.mar": {
            "folder": "data/mnist",
            "handler": "tests/fixtures/handlers/ts_mnist_handler.py",
            "torchscript": True,
        }
    },
    "suites": {
        "management": {
            "config": {
                "enable_model_api": "true",
                "disable_token_authorization": "true",
                "default_workers_per_model": "0",
            },
            "steps": management,
        },
        "inference": {
            "config": {
                "enable_model_api": "true",
                "disable_token_authorization": "true",
                "metrics_mode": "prometheus",
                "default_workers_per_model": "0",
            },
            "steps": inference,
        },
        "kserve_v1": {
            "config": {
                "enable_model_api": "true",
                "disable_token_authorization": "true",
                "metrics_mode": "prometheus",
                "service_envelope": "kserve",
                "default_workers_per_model": "0",
            },
            "steps": kserve_v1,
        },
        "kserve_v2": {
            "config": {
                "enable_model_api": "true",
                "disable_token_authorization": "true",
                "metrics_mode": "prometheus",
                "service_envelope": "kservev2",
                "default_workers_per_model": "0",
            },
            "steps": kserve_v2,
        },
    },
    "left_out": left_out,
}
for suite in data["suites"].values():
    for step in suite["steps"]:
        for k in [k for k, v in step.items() if v is None]:
            del step[k]
json.dump(data, open(HERE / "cases.json", "w"), indent=1)
print({k: len(v["steps"]) for k, v in data["suites"].items()}, len(left_out))

# ---- merge bodies recorded on two fresh TorchServe 0.12.0 runs (record_bodies.py)
sys.path.insert(0, str(HERE))
from api_replay import structure  # noqa: E402

if RUNS and os.path.exists(RUNS):
    runs = json.load(open(RUNS))
    counts = {"json": 0, "text": 0, "json_structure": 0, "none": 0}
    for suite, spec in data["suites"].items():
        first, second = runs[suite]
        for step, (s1, b1), (s2, b2) in zip(spec["steps"], first, second):
            if "expect" in step or "flaky" in step or s1 != s2 or s1 not in step["status"]:
                continue
            try:
                j1, j2 = json.loads(b1), json.loads(b2)
            except ValueError:
                j1 = j2 = None
            if b1 == b2:
                kind = "json" if j1 is not None else "text"
                step["expect"] = {
                    "kind": kind,
                    "value": j1 if j1 is not None else b1,
                    "recorded": "TorchServe 0.12.0",
                }
            elif j1 is not None and structure(j1) == structure(j2):
                kind = "json_structure"
                step["expect"] = {
                    "kind": kind,
                    "value": structure(j1),
                    "recorded": "TorchServe 0.12.0",
                }
            else:
                kind = "none"
            counts[kind] += 1
    print("recorded bodies:", counts)
    json.dump(data, open(HERE / "cases.json", "w"), indent=1)
