"""KServe's protocols on TorchServe's inference API: which paths they use, and what they answer.

TorchServe 0.12's frontend routes KServe v1 (`/v1/models/M:predict`) and the Open Inference
Protocol v2 (`/v2/models/M/infer`) to the model as a prediction, whatever `service_envelope` is;
the envelope (`kserve`, `kservev2`: `ts.torch_handler.request_envelope`) is applied by `ts`'s
worker, which loads it with the handler. With `ts_open_inference_protocol=true` the frontend
also answers v2's server routes itself (`/v2`, `/v2/health/live`, `/v2/health/ready`).
Mirrored from TorchServe 0.12's `InferenceRequestHandler.java` and
`OpenInferenceProtocolRequestHandler.java`.
"""

from __future__ import annotations

ENVELOPES = ("kserve", "kservev2")  # `service_envelope` values: ts's KServe v1 and v2 envelopes
# What TorchServe 0.12 answers on `GET /v2` (its "extenstion" key is spelt so).
SERVER_NAME, SERVER_VERSION = "Torchserve", "0.12.0"
VERSIONS_NOT_SUPPORTED = "Model versioning is not yet supported."


def check_envelope(envelope: str | None) -> str | None:
    """`envelope` if TorchServe's worker has it (None or "" : no envelope), else ValueError."""
    if not envelope:
        return None
    if envelope not in ENVELOPES:
        raise ValueError(f"service_envelope={envelope!r}: choose one of {', '.join(ENVELOPES)}")
    return envelope


def inference_route(segments: list[str]) -> tuple[str, str] | None:
    """A KServe prediction path -> ("predictions" or "explanations", model), else None.

    `segments` is the path split at "/" (the first is the empty string before the first "/").
    As TorchServe: v1's last segment need only *contain* ":predict" (else ":explain"), and in
    both protocols the model is that segment up to its first ":".
    """
    if len(segments) == 4 and segments[1:3] == ["v1", "models"]:
        last = segments[3]
        if ":predict" in last or ":explain" in last:
            kind = "predictions" if ":predict" in last else "explanations"
            return kind, last.split(":")[0]
    if len(segments) == 5 and segments[1:3] == ["v2", "models"]:
        if segments[4] in ("infer", "explain"):
            kind = "predictions" if segments[4] == "infer" else "explanations"
            return kind, segments[3].split(":")[0]
    return None


def server_route(segments: list[str]) -> str | None:
    """An Open Inference Protocol server path -> "ready", "live", "metadata" or "versions"
    (a model version's path: TorchServe answers 501), else None."""
    joined = "/".join(segments).strip()
    routes = {"/v2/health/ready": "ready", "/v2/health/live": "live", "/v2": "metadata"}
    if joined in routes:
        return routes[joined]
    if len(segments) > 5 and "/versions" in joined:
        return "versions"
    return None


def server_answer(kind: str) -> tuple[int, dict]:
    """The status and JSON body TorchServe 0.12 answers on a `server_route`."""
    if kind == "ready":
        return 200, {"ready": True}
    if kind == "live":
        return 200, {"live": True}
    if kind == "metadata":
        extensions = ["kserve", "kubeflow"]
        return 200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extenstion": extensions}
    return 501, {"error": VERSIONS_NOT_SUPPORTED}
