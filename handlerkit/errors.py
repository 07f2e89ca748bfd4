"""Errors a handler raises: at load time (bad model folder) and per request (bad input row).

A `RequestError` stays inside its row: the handler answers that row with `{"error": ...}` and an
HTTP status, and answers every other row of the batch normally.
"""


class RequestError(ValueError):
    """One request in the batch is unusable; `status` is the HTTP code its answer gets."""

    status = 400


class TooManyPixels(RequestError):
    """The image header declares more pixels than the limit (a possible decompression bomb)."""

    status = 413


class ModelLoadError(RuntimeError):
    """The model folder cannot be loaded; the message names the file and the fix."""
