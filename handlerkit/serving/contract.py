"""What TorchServe requires of what a handler returns, and what to say when a handler breaks it.
Sits beside the worker: after `handle` returns, `breach` names the first rule the answer broke.

TorchServe's worker (`ts.service`, `ts.protocol.otf_message_handler`) accepts a list with one
answer per request; each answer is bytes, str, a tensor (sent as `torch.save` bytes) or a value
`json.dumps` can write; response statuses and headers are ints and strings. When a handler breaks
one of these rules, TorchServe answers 503 with one line ("Invalid model predict output") or its
worker dies; here the rule is named in the handler's own terms, with the value's path and a fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ONE_ANSWER_EACH = "a list with one answer per request"
DIED = 'the frontend answers 500 "Worker died." to every request of the batch'
_no_encode = "AttributeError: no .encode"
ANSWER_TYPES = "bytes, str, or a value json.dumps can write (dict, list, str, int, float, bool)"


@dataclass
class Breach:
    """One broken rule: what was returned, what TorchServe requires and does, and the fix."""

    returned: str
    required: str
    torchserve: str
    fix: str
    stage: str = "handle"
    verb: str = "returned"

    def __str__(self) -> str:
        return (
            f"{self.stage} {self.verb} {self.returned}\n"
            f"  TorchServe requires: {self.required}\n"
            f"  TorchServe does: {self.torchserve}\n"
            f"  fix: {self.fix}"
        )


def breach(returned: Any, requests: int, context: Any = None, stage: str = "handle"):
    """The first rule TorchServe enforces that `returned` (or the context's per-request
    statuses and headers) breaks, as a `Breach`; None when TorchServe accepts it."""
    found = _shape_breach(returned, requests) or _row_breach(returned) or _reply_breach(context)
    if found is not None:
        found.stage = stage
    return found


def misleading(returned: Any, requests: int, context: Any = None) -> list[Breach]:
    """Answers TorchServe sends with 200 although a client cannot read them as meant."""
    if not isinstance(returned, list) or len(returned) != requests:
        return []
    found = []
    for index, row in enumerate(returned):
        path = f"answer[{index}]"
        if _is_tensor(row):
            found.append(_tensor_row(path, row))
        elif isinstance(row, (str, bytes)) and _looks_like_python_repr(row):
            found.append(_repr_row(path, row))
        else:
            found += [_not_a_number(p) for p, v in _walk(row, path) if _non_finite(v)][:1]
    return found + _status_for_first_row_only(returned, context)


def describe(value: Any) -> str:
    """A value as a sentence fragment: 'a dict with keys 'digit', 'probabilities''."""
    if value is None:
        return "None"
    name = type(value).__name__
    if _is_tensor(value) or type(value).__module__ == "numpy" and hasattr(value, "shape"):
        kind = "Tensor" if _is_tensor(value) else f"numpy {name}"
        if not value.shape:
            return f"a {kind} ({value.item()!r})"
        return f"a {kind} of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:4]) + (", ..." if len(value) > 4 else "")
        return f"a dict with keys {keys}" if value else "an empty dict"
    if isinstance(value, (list, tuple, set)):
        kinds = sorted({type(v).__name__ for v in value})
        return f"a {name} of {len(value)} ({', '.join(kinds) or 'nothing'})"
    if hasattr(value, "__next__"):
        return f"a {name} (answers produced lazily, not a list)"
    return f"a {name}"


# ---- the rules ------------------------------------------------------------------------------
def _shape_breach(returned: Any, requests: int) -> Breach | None:
    each = f"{ONE_ANSWER_EACH} (here {requests})"
    if not isinstance(returned, list):
        return Breach(
            describe(returned), each, '503 "Invalid model predict output"', _list_fix(returned)
        )
    if len(returned) != requests:
        one_request_spread = requests == 1 and len(returned) > 1
        fix = (
            "the list holds one request's values: return [values] (a list inside a list)"
            if one_request_spread
            else "return exactly one answer per row of `data`, in the same order"
        )
        torchserve = '503 "number of batch response mismatched" to every request of the batch'
        return Breach(f"{describe(returned)} for {requests} request(s)", each, torchserve, fix)
    return None


def _list_fix(returned: Any) -> str:
    if returned is None:
        return "add the missing `return` at the end of handle/postprocess (a list)"
    if isinstance(returned, dict):
        return "return a list of answers, one per row of `data`: [answer] for one request"
    if isinstance(returned, tuple) or hasattr(returned, "__next__"):
        return "return list(...) of it: a list, one answer per row of `data`"
    if hasattr(returned, "tolist"):
        return "return .tolist() of it (one row per request), or a list of dicts"
    return "return a list with one answer per row of `data`"


def _row_breach(returned: list) -> Breach | None:
    for index, row in enumerate(returned):
        if isinstance(row, (bytes, bytearray, str)) or _is_tensor(row):
            continue
        for path, value in _walk(row, f"answer[{index}]"):
            if not _json_leaf(value):
                return Breach(
                    f"{describe(value)} at {path}",
                    f"each answer to be {ANSWER_TYPES}",
                    '503 "Unsupported model output data type." to every request of the batch',
                    _leaf_fix(value),
                )
    return None


def _reply_breach(context: Any) -> Breach | None:
    for index, processor in enumerate(getattr(context, "request_processor", None) or []):
        status = processor.get_response_status_code()
        if not isinstance(status, int):
            return Breach(
                verb="set",
                returned=f"a response status {status!r} ({type(status).__name__}) "
                f"for request {index}",
                required="an int status: context.set_response_status(400, 'why', idx)",
                torchserve=f"its worker process dies writing the reply (struct.error); {DIED}",
                fix=f"pass the status as an int: set_response_status({_as_int(status)}, ...)",
            )
        for key, value in processor.get_response_headers().items():
            if not (isinstance(key, str) and isinstance(value, str)):
                return Breach(
                    verb="set",
                    returned=f"a response header {key!r}: {value!r} ({type(value).__name__}) "
                    f"for request {index}",
                    required="header names and values that are str",
                    torchserve=f"its worker process dies writing the reply ({_no_encode}); {DIED}",
                    fix=f"set_response_header({index}, {str(key)!r}, str(value))",
                )
    return None


def _status_for_first_row_only(returned: list, context: Any) -> list[Breach]:
    processors = getattr(context, "request_processor", None) or []
    if len(processors) < 2:
        return []
    statuses = [p.get_response_status_code() for p in processors]
    errors = [i for i, row in enumerate(returned) if isinstance(row, dict) and "error" in row]
    unmarked = [i for i in errors if statuses[i] == 200]
    if not unmarked or statuses[0] == 200 or 0 in errors:
        return []
    return [
        Breach(
            f"an error at answer[{unmarked[0]}] with status 200, and status {statuses[0]} on "
            "request 0 whose answer is not an error",
            "the status of each request set with its own index",
            "sends each request the status set for it: here the wrong one",
            "pass the row's index: context.set_response_status(400, 'why', idx) "
            "(idx defaults to 0)",
        )
    ]


# ---- 200s that mislead ----------------------------------------------------------------------
def _tensor_row(path: str, row) -> Breach:
    return Breach(
        f"{describe(row)} at {path}",
        f"each answer to be {ANSWER_TYPES}",
        "200 with the tensor's torch.save bytes (a zip file), not JSON",
        f"return {path}.tolist() (or a dict of plain numbers)",
    )


def _repr_row(path: str, row) -> Breach:
    text = row.decode("utf-8", "replace") if isinstance(row, bytes) else row
    return Breach(
        f"a {type(row).__name__} {text[:40]!r} at {path}: Python's repr, not JSON",
        "JSON text when the answer is meant as JSON",
        "200 with these characters as the body; json.loads fails on the client",
        "return the dict itself (TorchServe writes it as JSON), or json.dumps(value)",
    )


def _not_a_number(path: str) -> Breach:
    return Breach(
        f"NaN or infinity at {path}",
        "numbers that JSON can carry",
        "200 with NaN/Infinity in the body: not valid JSON, json.loads in a browser fails",
        "find where the NaN comes from (an empty input, a division by zero) and answer an error",
    )


# ---- helpers --------------------------------------------------------------------------------
def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every leaf under `value` with its path (answer[0]["p"][3])."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                yield f"{path} (the key {key!r})", key
                continue
            yield from _walk(item, f"{path}[{key!r}]".replace("'", '"'))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


def _json_leaf(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _leaf_fix(value: Any) -> str:
    if _is_tensor(value):
        return "turn tensors into numbers first: .tolist(), or .item() for one number"
    if type(value).__module__ == "numpy":
        return "turn numpy values into Python ones: .tolist(), or float()/int() for one"
    if isinstance(value, (bytes, bytearray)):
        return "bytes can be a whole answer but not inside one: decode them or use base64"
    if isinstance(value, set):
        return "use a list (sorted(...)) instead of a set"
    return f"turn the {type(value).__name__} into a dict, list, str or number"


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "shape")


def _looks_like_python_repr(row: str | bytes) -> bool:
    text = row.decode("utf-8", "replace") if isinstance(row, bytes) else row
    text = text.strip()
    if not text or text[0] not in "{[(":
        return False
    try:
        json.loads(text)
    except ValueError:
        return "'" in text or "(" in text or "array(" in text or "tensor(" in text
    return False


def _as_int(status: Any) -> str:
    try:
        return str(int(status))
    except (TypeError, ValueError):
        return "400"
