"""The same models, unchanged, on LitServe and Ray Serve, behind TorchServe's inference API.

The frontend rules and the worker are the offline server's (`handlerkit.offline`); each engine
only carries requests to a model's worker and batches them its own way. Optional extras:
`handlerkit[litserve]`, `handlerkit[ray]`; nothing here imports them until an engine starts.
"""

from .models import ENGINES, ModelSpec, Settings, parse_models
from .process import EngineServer

__all__ = ["ENGINES", "EngineServer", "ModelSpec", "Settings", "parse_models"]
