"""TorchServe's OpenAPI descriptions, as its 0.12 inference API sends them (bytes, not rebuilt).

Part of the frontend rules: `OPTIONS /` and `/api-description` answer the inference API's
description; `OPTIONS /predictions/NAME` answers the model's endpoint (the same text for every
model, its name put in). Both files were read from a real TorchServe 0.12.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parent / "openapi"


@cache
def inference_api() -> bytes:
    """The inference API's description (`OPTIONS /`, `/api-description`)."""
    return (FOLDER / "inference_api.json").read_bytes()


def model_api(name: str) -> bytes:
    """The description of `/predictions/NAME` (`OPTIONS /predictions/NAME`)."""
    return _model_template().replace(b"@MODEL@", json.dumps(name)[1:-1].encode("utf-8"))


@cache
def _model_template() -> bytes:
    return (FOLDER / "model_api.json").read_bytes()
