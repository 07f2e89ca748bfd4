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


class UnsupportedFormat(RequestError):
    """The bytes are an image in a format the handler does not open (e.g. EPS, which runs
    Ghostscript); the message names the format and the ones accepted."""

    status = 415


class ModelFault(RequestError):
    """The model failed on every request of the batch: a fault of the model or the handler, so
    the server answers 500 rather than blaming each request."""

    status = 500
