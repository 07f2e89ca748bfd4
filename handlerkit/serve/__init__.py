"""Serve a TorchServe model folder with a real local TorchServe, from a notebook or a test.

`archive` packs a folder into a .mar; `TorchServe` runs the Java server on 127.0.0.1 and stops it.
"""

from ..run.torchserve.archive import archive
from ..run.torchserve.errors import ServeError
from ..run.torchserve.measure import measure
from ..run.torchserve.server import TorchServe
from ..serving.frontend import Answer

__all__ = ["Answer", "ServeError", "TorchServe", "archive", "measure"]
