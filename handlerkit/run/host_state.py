"""What a handler may change in the process that loads it, saved and put back.

`OfflineServer` loads handlers into the learner's own process; `close()` leaves that process as
it found it: Pillow's pixel limit, signal handlers, environment variables, `sys.path`, torch's
thread count.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field


@dataclass
class HostState:
    """A snapshot of the process-wide settings handlers are known to change."""

    pixels: int | None = None
    handlers: dict = field(default_factory=dict)
    environ: dict = field(default_factory=dict)
    path: list = field(default_factory=list)
    threads: int | None = None

    @classmethod
    def save(cls) -> HostState:
        from PIL import Image

        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        return cls(
            Image.MAX_IMAGE_PIXELS, handlers, dict(os.environ), list(sys.path), _torch_threads()
        )

    def restore(self) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = self.pixels
        for signum, handler in self.handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
        os.environ.clear()
        os.environ.update(self.environ)
        sys.path[:] = self.path
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return sys.modules["torch"].get_num_threads()
