"""Checks for notebook 02 (BaseHandler, step by step), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from ... import Context
from ...course import samples
from .. import NotYet, Wrong, exercise

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def mnist_folders(work: Path) -> dict[str, Path]:
    """Two fresh MNIST model folders in `work`: eager (model.py + state_dict) and TorchScript
    (one traced .pt); both label files use TorchServe's list form, ``["n00", "zero"]``."""
    from ... import loading

    labels = {str(i): [f"n{i:02d}", name] for i, name in enumerate(DIGIT_NAMES)}
    eager, script = work / "mnist_eager", work / "mnist_torchscript"
    for folder in (eager, script):
        folder.mkdir()
        (folder / "index_to_name.json").write_text(json.dumps(labels))
    for name in ("model.py", "mnist_cnn.pt"):
        shutil.copy(samples.MNIST_DIR / name, eager / name)
    model = loading.load_eager_model(
        eager / "model.py", eager / "mnist_cnn.pt", torch.device("cpu")
    )
    torch.jit.trace(model, torch.zeros(1, 1, 28, 28)).save(str(script / "mnist_net.pt"))
    return {"eager": eager, "TorchScript": script}


def watched_digit_handler(shortcuts: dict[str, str]) -> type:
    """An MNIST handler class whose methods named in `shortcuts` raise `Wrong` with their text."""
    from ... import MNISTDigitClassifier

    def refuse(message):
        def method(self, *args, **kwargs):
            raise Wrong(message)

        return method

    return type("Handler", (MNISTDigitClassifier,), {m: refuse(t) for m, t in shortcuts.items()})


@exercise("02.initialize", "write initialize_by_hand(handler, context): initialize's steps by hand")
def check_initialize(initialize_by_hand) -> list[str]:
    from ... import MNISTDigitClassifier

    by_hand = watched_digit_handler(
        {
            "initialize": "call the steps yourself, not handler.initialize",
            "load_model": "call loading's functions yourself, not handler.load_model",
        }
    )
    rows = samples.digit_rows(8)
    passed = []
    with tempfile.TemporaryDirectory() as work, warnings.catch_warnings():
        # PyTorch 2.x calls TorchScript deprecated on every call; TorchServe still serves it.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        for kind, folder in mnist_folders(Path(work)).items():
            context = Context.local(folder, gpu_id=0)
            reference = MNISTDigitClassifier()
            reference.initialize(context)
            handler = by_hand()
            try:
                initialize_by_hand(handler, context)
            except (Wrong, NotYet):
                raise
            except Exception as error:
                if kind == "eager":
                    raise
                raise Wrong(
                    f"on a TorchScript folder (no modelFile in its manifest) your code raised "
                    f"{type(error).__name__}: {error}. Without modelFile, load the serializedFile "
                    "with loading.load_torchscript_model"
                ) from None
            if handler.model is None and handler.device is None and not handler.initialized:
                raise NotYet("initialize_by_hand has set nothing yet: set the handler's fields")
            compare_initialized(kind, handler, reference, context)
            answers = handler.handle(rows, context.for_requests([{}] * len(rows)))
            if answers != reference.handle(rows, context.for_requests([{}] * len(rows))):
                raise Wrong(f"{kind} folder: the handler answers other digits than initialize's")
            passed.append(
                f"a fresh {kind} folder: the same fields as initialize sets, the same answers"
            )
    return passed


def compare_initialized(kind: str, handler, reference, context) -> None:
    """Raise `Wrong` naming the first field `initialize_by_hand` set otherwise than initialize."""
    where = f"{kind} folder: handler"
    if handler.device != reference.device:
        raise Wrong(
            f"{where}.device is {handler.device!r}; loading.choose_device(gpu_id) gives "
            f"{reference.device!r} for gpu_id {context.system_properties['gpu_id']}"
        )
    if handler.map_location != reference.map_location:
        raise Wrong(f"{where}.map_location is {handler.map_location!r}: it is the device's type")
    if handler.manifest != context.manifest:
        raise Wrong(f"{where}.manifest is {handler.manifest!r:.60}: take context.manifest")
    if handler.model is None:
        raise Wrong(f"{where}.model is None: load the model")
    is_script = isinstance(handler.model, torch.jit.ScriptModule)
    if is_script != isinstance(reference.model, torch.jit.ScriptModule):
        raise Wrong(
            f"{where}.model is {type(handler.model).__name__}: with modelFile in the manifest "
            "load_eager_model, without it load_torchscript_model"
        )
    if handler.model.training:
        raise Wrong(
            f"{where}.model is in training mode (dropout on): the loaders return it in eval"
        )
    if handler.mapping != reference.mapping:
        raise Wrong(
            f"{where}.mapping['0'] is {(handler.mapping or {}).get('0')!r}, initialize's is "
            f"{reference.mapping['0']!r}: read index_to_name.json with loading.load_mapping "
            "(a list's label is its last element)"
        )
    if handler.initialized is not True:
        raise Wrong(f"{where}.initialized is {handler.initialized!r}: set it to True, last")


@exercise("02.by_hand", "write handle_by_hand(handler, rows): the three stages, bad rows answered")
def check_by_hand(handle_by_hand) -> list[str]:
    from ... import MNISTDigitClassifier

    not_handle = "call preprocess, inference and postprocess yourself, not handle"
    watched = watched_digit_handler({"handle": not_handle, "stages": not_handle})
    handler, _ = watched.for_folder(samples.MNIST_DIR)
    reference, context = MNISTDigitClassifier.for_folder(samples.MNIST_DIR)
    good = samples.digit_rows(5)
    batches = {
        "five digits": good,
        "a digit, not an image, two digits": [good[0], {"data": b"not an image"}, *good[1:3]],
        "two rows, no image": [{"data": b""}, {"data": b"GIF89a?"}],
    }
    passed = []
    for name, rows in batches.items():
        want = reference.handle(rows, context.for_requests([{}] * len(rows)))
        try:
            got = handle_by_hand(handler, rows)
        except (Wrong, NotYet):
            raise
        except Exception as error:
            if name != "two rows, no image":
                raise
            raise Wrong(
                f"{name}: your code raised {type(error).__name__}: {error}. When no row is "
                "usable, preprocess returns None: answer every row's error without inference"
            ) from None
        if got is None:
            raise NotYet("handle_by_hand returns None: return one answer per row")
        bad = [i for i, answer in enumerate(want) if isinstance(answer, dict)]
        if not isinstance(got, list) or len(got) != len(rows):
            count = len(got) if isinstance(got, list) else got
            raise Wrong(
                f"{name}: {count!r:.40} answers for {len(rows)} rows. preprocess leaves out the "
                f"bad rows {bad} and notes each in handler.row_errors: put "
                '{"error": str(error)} in its slot'
            )
        if got != want:
            first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            raise Wrong(
                f"{name}: row {first} is answered {got[first]!r:.60}, "
                f"handle answers {want[first]!r:.60}"
            )
        passed.append(f"{name}: the same {len(rows)} answers as handle, bad rows {bad}")
    return passed


@exercise("02.stage_seconds", "write stage_seconds(handler, rows, context, calls): a timing hook")
def check_stage_seconds(stage_seconds) -> list[str]:
    from ... import MNISTDigitClassifier

    handler, context = MNISTDigitClassifier.for_folder(samples.MNIST_DIR)
    rows = samples.digit_rows(4)
    calls = 3
    seen = []
    mine = handler.register_trace_hook(seen.append)  # the same records the learner's hook gets
    try:
        got = stage_seconds(handler, rows, context, calls)
    finally:
        mine.remove()
    if got is None:
        raise NotYet("stage_seconds returns None: return {stage: total seconds}")
    if handler.hooks:
        raise Wrong(
            "your hook is still registered after stage_seconds returned: call .remove() on the "
            "handle register_trace_hook gave you"
        )
    stages = [record for record in seen if record.kind == "stage"]
    ran = sum(record.stage == "preprocess" for record in stages)
    if ran != calls:
        raise Wrong(f"stage_seconds(..., calls={calls}) ran handle {ran} times")
    want: dict[str, float] = {}
    for record in stages:
        want[record.stage] = want.get(record.stage, 0.0) + record.seconds
    if not isinstance(got, dict) or set(got) != set(want):
        keys = sorted(got) if isinstance(got, dict) else got
        extra = (
            " (keep only records of kind 'stage')"
            if isinstance(got, dict) and set(got) > set(want)
            else ""
        )
        raise Wrong(f"answer one total per stage, {sorted(want)}; got {keys!r:.120}{extra}")
    last = {record.stage: record.seconds for record in stages}
    for stage, total in want.items():
        value = float(got[stage])
        if abs(value - total) > 1e-9 + 1e-6 * total:
            hint = (
                ": that is the last call's only; add over all calls"
                if abs(value - last[stage]) <= 1e-9 + 1e-6 * last[stage]
                else ": add up record.seconds of the records your hook receives"
            )
            raise Wrong(f"{stage}: {value:.6f} s, but its {calls} calls took {total:.6f} s{hint}")
    return [
        f"{calls} calls of handle: each stage's seconds added up, as the hooks reported them",
        "the hook removed afterwards",
    ]
