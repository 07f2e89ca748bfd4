"""The one error the serve package raises, with a message that names the problem and the fix.

Every module of `handlerkit.serve` raises `ServeError`; `handlerkit.serve` re-exports it.
"""

__all__ = ["ServeError"]


class ServeError(RuntimeError):
    """TorchServe could not be archived, started, asked or stopped as requested."""
