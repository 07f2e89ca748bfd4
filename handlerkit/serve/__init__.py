"""Serve a TorchServe model folder with a real local TorchServe, from a notebook or a test.

`archive` packs a folder into a .mar; `TorchServe` runs the Java server on 127.0.0.1 and stops it.
"""

from .archive import archive
from .client import Answer
from .errors import ServeError
from .measure import measure
from .server import TorchServe

__all__ = ["Answer", "ServeError", "TorchServe", "archive", "measure"]
