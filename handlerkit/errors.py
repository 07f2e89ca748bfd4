"""Errors a handler raises: at load time (bad model folder) and per request (bad input row).

A `RowError` stays inside its row: the handler answers that row with `{"error": ...}` and its
HTTP status, and answers every other row of the batch normally. Two kinds: the request's fault
(`RequestError`, a 4xx) and the model's (`ModelFault`, a 5xx).
"""


class RowError(ValueError):
    """One row of the batch gets an error answer; `status` is the HTTP code that answer gets."""

    status = 500


class RequestError(RowError):
    """One request in the batch is unusable (the client's fault): a 4xx."""

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


class ModelFault(RowError):
    """The model failed on every request of the batch: a fault of the model or the handler, so
    the server answers 500 rather than blaming each request."""

    status = 500
