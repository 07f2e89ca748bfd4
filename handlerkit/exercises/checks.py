"""The checks of the series' exercises, one function per exercise, registered by name.
Sits on top of the handlers, offline and serve; `check` imports it on first use.

Each check calls the learner's function on fresh inputs of its own (or recomputes the value the
learner was asked for) and says which part is right; the messages name the usual mistakes.
"""

from __future__ import annotations

import inspect
import io
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from .. import Context, digits, samples
from . import NotYet, Wrong, exercise
from .capstone import check_capstone, photo_of

# ---- 01 · DenseNet with the default ImageClassifier ---------------------------------------------


def fresh_photos() -> dict[str, bytes]:
    """Photos unlike the notebook's five: one grayscale, one taller than wide, one very wide."""
    return {
        "chelsea as a grayscale JPEG": samples.encode(
            samples.photo("chelsea").convert("L"), "JPEG"
        ),
        "coffee as a tall PNG": samples.encode(samples.photo("coffee").resize((210, 400)), "PNG"),
        "astronaut as a wide JPEG": samples.encode(
            samples.photo("astronaut").resize((480, 260)), "JPEG"
        ),
    }


def imagenet_steps(*first) -> transforms.Compose:
    """`first` (resizing) steps, then ToTensor and Normalize with ImageNet's mean and std."""
    from ..handlers.image_classifier import IMAGENET_MEAN, IMAGENET_STD

    tail = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return transforms.Compose([*first, *tail])


def why_not_preprocessed(name: str, got: torch.Tensor, data: bytes) -> str:
    """What a tensor of the right shape but other values most likely left out (a message)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    resized = transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
    )(image)
    if torch.allclose(got, resized, atol=1e-4):
        return (
            f"{name}: the values are ToTensor's 0..1: Normalize them with ImageNet's mean "
            "[0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225], the statistics the weights expect"
        )
    if torch.allclose(got, transforms.Normalize([0.5] * 3, [0.5] * 3)(resized), atol=1e-4):
        return (
            f"{name}: mean = std = 0.5 is EfficientNet-Lite's [-1, 1] scaling; the default "
            "ImageClassifier normalizes with ImageNet's mean and std"
        )
    if torch.allclose(got, imagenet_steps(transforms.Resize((224, 224)))(image), atol=1e-4):
        return (
            f"{name}: Resize((224, 224)) squashes the photo; Resize(256) keeps its aspect ratio "
            "(the shorter side becomes 256), then CenterCrop(224) keeps the middle"
        )
    wanted = imagenet_steps(transforms.Resize(256), transforms.CenterCrop(224))(image)
    return (
        f"{name}: the values differ from preprocess's (largest difference "
        f"{float((got - wanted).abs().max()):.3f}): decode, convert('RGB'), Resize(256), "
        "CenterCrop(224), ToTensor, Normalize, in that order"
    )


@exercise("01.preprocess", "write preprocess_one(data): one request's bytes -> the model's tensor")
def check_preprocess(preprocess_one) -> list[str]:
    from .. import ImageClassifier

    reference = ImageClassifier()  # preprocess needs no model, only a device for to_device
    reference.device = torch.device("cpu")
    passed = []
    for name, data in fresh_photos().items():
        mode = Image.open(io.BytesIO(data)).mode
        try:
            got = preprocess_one(data)
        except (Wrong, NotYet):
            raise
        except Exception as error:
            if mode == "RGB":
                raise
            raise Wrong(
                f"{name}: your code raised {type(error).__name__}: {str(error).splitlines()[0]}. "
                f"The photo is {mode}, one channel: convert('RGB') first, as the convert step does"
            ) from None
        if got is None:
            raise NotYet("preprocess_one returns None: return the (3, 224, 224) tensor")
        if not isinstance(got, torch.Tensor):
            raise Wrong(f"{name}: answer the tensor (ToTensor makes one), not {type(got).__name__}")
        want = reference.preprocess([{"data": data}])[0]
        if tuple(got.shape) != tuple(want.shape):
            hint = ""
            if got.dim() == 3 and got.shape[0] != 3:
                hint = f": the photo is {mode}; convert('RGB') gives every photo three channels"
            elif got.dim() == 4:
                hint = ": answer one request's tensor, without a batch dimension"
            elif tuple(got.shape[-2:]) != (224, 224):
                hint = ": CenterCrop(224) after Resize(256) makes every photo 224x224"
            raise Wrong(f"{name}: shape {tuple(got.shape)}, preprocess makes (3, 224, 224){hint}")
        got = got.detach().float().cpu()
        if not torch.allclose(got, want, atol=1e-4):
            raise Wrong(why_not_preprocessed(name, got, data))
        passed.append(f"{name} ({mode}): the same (3, 224, 224) tensor as preprocess makes")
    return passed


def fresh_imagenet_logits(rows: int = 4, seed: int = 11) -> torch.Tensor:
    """Logits for ImageNet's 1000 classes, a few classes ahead in each row."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 1000, generator=generator) * 3


@exercise("01.top_k", "write top_k(logits, mapping, k): softmax, the k likeliest, their labels")
def check_top_k(top_k) -> list[str]:
    from .. import ImageClassifier, loading

    logits = fresh_imagenet_logits()
    reference = ImageClassifier()
    reference.mapping = loading.load_mapping(samples.DENSENET_DIR / "index_to_name.json")
    for k in (5, 3, 10):
        got = top_k(logits.clone(), dict(reference.mapping), k)
        if got is None:
            raise NotYet("top_k returns None: return one {label: probability} dict per row")
        reference.set_max_result_classes(k)
        want = reference.postprocess(logits)
        if not isinstance(got, list) or len(got) != len(want):
            raise Wrong(
                f"top_k must answer a list, one dict per row: {len(want)} rows in, got {got!r:.80}"
            )
        for row, (answer, wanted) in enumerate(zip(got, want)):
            check_top_k_row(row, k, answer, wanted, logits, reference.label)
    return [
        f"{len(logits)} fresh rows of 1000 logits, k = 5, 3 and 10",
        "the k likeliest labels, likeliest first, with softmax probabilities as plain floats",
    ]


def check_top_k_row(row: int, k: int, answer, wanted: dict, logits: torch.Tensor, label) -> None:
    """Raise `Wrong` naming what differs between one row's answer and postprocess's."""
    if not isinstance(answer, dict):
        raise Wrong(f"row {row}: answer a dict {{label: probability}}, got {answer!r:.60}")
    if len(answer) != len(wanted):  # len(wanted) < k only where two classes share a label
        raise Wrong(f"k = {k}: row {row} has {len(answer)} labels; answer the k likeliest")
    keys = list(answer)
    if keys != list(wanted):
        if all(isinstance(key, int) or str(key).isdigit() for key in keys):
            raise Wrong(
                f"row {row}: the keys {keys[:3]} are class indexes: use mapping[str(index)]"
            )
        if set(keys) == set(wanted):
            raise Wrong(f"row {row}: the right labels in another order: likeliest first")
        by_batch = [label(i) for i in F.softmax(logits, dim=0)[row].topk(k).indices.tolist()]
        hint = " (softmax over dim=0 mixes the rows of the batch)" if keys == by_batch else ""
        raise Wrong(
            f"row {row}: labels {keys[:3]}..., but the {k} likeliest are "
            f"{list(wanted)[:3]}...{hint}: softmax each row over its 1000 classes (dim=1), "
            "then topk"
        )
    values = list(answer.values())
    if not all(type(value) is float for value in values):
        raise Wrong(
            f"row {row}: the probabilities are {type(values[0]).__name__}s; TorchServe answers "
            "JSON: make them plain floats (.tolist() or float())"
        )
    indexes = logits[row].topk(k).indices
    if torch.allclose(torch.tensor(values), logits[row][indexes], atol=1e-4):
        raise Wrong(f"row {row}: those are logits, not probabilities: apply softmax (dim=1)")
    if not torch.allclose(torch.tensor(values), torch.tensor(list(wanted.values())), atol=1e-5):
        raise Wrong(f"row {row}: the probabilities are not softmax(logits, dim=1) of those classes")


# ---- 02 · BaseHandler, step by step -------------------------------------------------------------

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def mnist_folders(work: Path) -> dict[str, Path]:
    """Two fresh MNIST model folders in `work`: eager (model.py + state_dict) and TorchScript
    (one traced .pt); both label files use TorchServe's list form, ``["n00", "zero"]``."""
    from .. import loading

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
    from .. import MNISTDigitClassifier

    def refuse(message):
        def method(self, *args, **kwargs):
            raise Wrong(message)

        return method

    return type("Handler", (MNISTDigitClassifier,), {m: refuse(t) for m, t in shortcuts.items()})


@exercise("02.initialize", "write initialize_by_hand(handler, context): initialize's steps by hand")
def check_initialize(initialize_by_hand) -> list[str]:
    from .. import MNISTDigitClassifier

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
    from .. import MNISTDigitClassifier

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
    from .. import MNISTDigitClassifier

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


# ---- 03 · a customized MNIST handler ------------------------------------------------------------


def fresh_logits(rows: int = 6, seed: int = 3) -> torch.Tensor:
    """Log-probabilities like Net's output, some rows sure of their digit and some not."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, 10, generator=generator)
    logits[::2] *= 6  # even rows: one digit far ahead (sure); odd rows: close calls (unsure)
    return F.log_softmax(logits, dim=1)


def top3_wanted(data: torch.Tensor) -> list[dict]:
    probabilities = F.softmax(data.float(), dim=1)
    wanted = []
    for p in probabilities:
        values, indexes = p.topk(3)
        answer = {"digit": int(indexes[0]), "top3": dict(zip(indexes.tolist(), values.tolist()))}
        if values[0] < 0.5:
            answer["unsure"] = True
        wanted.append(answer)
    return wanted


@exercise("03.top3", "write top3(data): the digit, its top three {digit: probability}, unsure")
def check_top3(top3) -> list[str]:
    data = fresh_logits()
    got = top3(data.clone())
    if got is None:
        raise NotYet("top3 returns None: write its body (return one dict per row)")
    if not isinstance(got, list) or len(got) != len(data):
        raise Wrong(
            f"top3 must return a list with one answer per row: {len(data)} rows in, got {got!r:.80}"
        )
    for row, (answer, want) in enumerate(zip(got, top3_wanted(data))):
        if not isinstance(answer, dict) or "digit" not in answer or "top3" not in answer:
            raise Wrong(f"row {row}: answer {{'digit': ..., 'top3': {{...}}}}, got {answer!r:.80}")
        if answer["digit"] != want["digit"]:
            raise Wrong(
                f"row {row}: digit {answer['digit']!r}, but the likeliest digit is {want['digit']}"
            )
        top = answer["top3"]
        if not isinstance(top, dict) or list(top) != list(want["top3"]):
            raise Wrong(
                f"row {row}: top3 has the keys {list(top) if isinstance(top, dict) else top!r}; "
                "it needs the three likeliest digits (as ints), likeliest first"
            )
        values = torch.tensor([float(v) for v in top.values()])
        if torch.allclose(values, data[row][list(top)], atol=1e-4):
            raise Wrong(
                f"row {row}: top3 holds log-probabilities (Net ends in log_softmax): apply softmax"
            )
        if not torch.allclose(values, torch.tensor(list(want["top3"].values())), atol=1e-4):
            raise Wrong(
                f"row {row}: the probabilities in top3 are not softmax(data) of those digits"
            )
        if answer.get("unsure", False) != want.get("unsure", False):
            best = max(want["top3"].values())
            raise Wrong(
                f'row {row}: top probability {best:.2f}; "unsure": True belongs only below 0.5'
            )
    return [
        f"{len(data)} fresh rows: one answer per row, the right digit",
        "top3: the three likeliest digits with their probabilities, likeliest first",
        "unsure: True on the close calls only",
    ]


@exercise("03.without", "write without(step): a MyUploadHandler subclass that skips that step")
def check_without(without) -> list[str]:
    steps = [name for name, _ in digits.UPLOAD_STEPS]
    before = list(digits.UPLOAD_STEPS)
    scores = []
    context = Context.local(samples.MNIST_DIR)
    photos = [{"data": photo_of(i)} for i in range(0, 1000, 50)]
    labels = [samples.digit_label(i) for i in range(0, 1000, 50)]
    for left_out in ("invert_if_light", "crop_to_ink", "center_by_mass"):
        handler_class = without(left_out)
        if handler_class is None:
            raise NotYet(
                "without returns None: return a new class (class Skip(MyUploadHandler): ...)"
            )
        if digits.UPLOAD_STEPS != before:
            digits.UPLOAD_STEPS[:] = before
            raise Wrong(
                "without changed digits.UPLOAD_STEPS itself (restored now): build a new list"
            )
        if not inspect.isclass(handler_class):
            raise Wrong(f"without({left_out!r}) must return a class, got {handler_class!r:.60}")
        have = [name for name, _ in getattr(handler_class, "upload_steps", [])]
        want = [name for name in steps if name != left_out]
        if have != want:
            raise Wrong(f"without({left_out!r}).upload_steps runs {have}; it should run {want}")
        handler = handler_class()
        handler.initialize(context)
        answers = handler.handle(photos, context.for_requests([{}] * len(photos)))
        right = sum(
            isinstance(a, dict) and a.get("digit") == label for a, label in zip(answers, labels)
        )
        scores.append(f"without {left_out}: {right}/{len(photos)} photos of digits answered right")
    return ["each class runs every step but the one left out, in order"] + scores


@exercise(
    "03.capstone", "write HANDLER_PY: a ts-style handler.py with your preprocess and postprocess"
)
def check_capstone_handler(handler_py) -> list[str]:
    return check_capstone(handler_py)


# ---- 05 · where the time goes -------------------------------------------------------------------


def digit_handler():
    """handlerkit's upload-ready MNIST handler and its context: small, quick fresh inputs."""
    from .. import UploadedDigitClassifier

    return UploadedDigitClassifier.for_folder(samples.MNIST_DIR)


@exercise("05.stage_share", "write stage_share(trace): each stage's share of the call's time")
def check_stage_share(stage_share) -> list[str]:
    from .. import trace

    handler, context = digit_handler()
    rows = samples.digit_rows(6)
    with trace(handler, capture="summary") as t:
        handler.handle(rows, context.for_requests([{}] * len(rows)))
    got = stage_share(t)
    if got is None:
        raise NotYet("stage_share returns None: return {stage: share}")
    stages = [r for r in t if r.kind == "stage"]
    total = sum(r.seconds for r in stages)
    want = {r.stage: r.seconds / total for r in stages}
    if not isinstance(got, dict) or set(got) != set(want):
        keys = sorted(got) if isinstance(got, dict) else got
        raise Wrong(
            f"stage_share must answer one share per stage, {sorted(want)}; got {keys!r:.120}"
        )
    added = sum(float(v) for v in got.values())
    if abs(added - 1) > 1e-6:
        raise Wrong(
            f"your shares add up to {added:.3f}, not 1: divide each stage's seconds by the sum "
            "over "
            "the stages (records of kind 'stage'; the steps are inside preprocess, count them once)"
        )
    off = [s for s in want if abs(float(got[s]) - want[s]) > 1e-6]
    if off:
        raise Wrong(f"the shares of {off} are not that stage's seconds / all stages' seconds")
    return [f"a fresh trace of {len(rows)} digits: the right share for {', '.join(want)}"]


@exercise(
    "05.kept_rows", "write kept_rows(trace): the requests whose per-image values a trace kept"
)
def check_kept_rows(kept_rows) -> list[str]:
    from .. import trace

    handler, context = digit_handler()
    rows = samples.digit_rows(6)
    passed = []
    for options in (
        {"capture": "full", "max_rows": 2},
        {"capture": "full", "max_rows": 4},
        {"capture": "full"},
    ):
        with trace(handler, **options) as t:
            handler.handle(rows, context.for_requests([{}] * len(rows)))
        got = kept_rows(t)
        if got is None:
            raise NotYet("kept_rows returns None: return the set of request indexes")
        want = {r.row for r in t if r.row is not None and r.output is not None}
        if set(got) != want:
            hint = ""
            if set(got) == {r.row for r in t if r.row is not None}:
                hint = ": every request has step records; only some keep their values (output)"
            raise Wrong(
                f"with {options} kept_rows says {sorted(got)}, the trace kept {sorted(want)}{hint}"
            )
        passed.append(f"{options}: rows {sorted(want)} of {len(rows)}")
    return passed


# ---- 08 · what the model looked at --------------------------------------------------------------


def explain(handler, context, data: bytes, target: int) -> torch.Tensor:
    """The attributions `handle` answers with `explain: True` for class `target`."""
    rows = [{"data": data, "target": target}]
    return torch.as_tensor(handler.handle(rows, context.for_requests([{"explain": "True"}]))[0])


@exercise("08.completeness", "write completeness(handler, context, data, target): IG's two sides")
def check_completeness(completeness) -> list[str]:
    handler, context = digit_handler()
    index = 2405
    data, target = samples.digit_png(index), samples.digit_label(index)
    got = completeness(handler, context, data, target)
    if got is None:
        raise NotYet(
            "completeness returns None: return (sum of the attributions, logit difference)"
        )
    try:
        attribution_sum, difference = (float(v) for v in got)
    except (TypeError, ValueError):
        raise Wrong(
            f"answer two numbers, (attribution sum, logit difference); got {got!r:.80}"
        ) from None
    want_sum = float(explain(handler, context, data, target).sum())
    with torch.no_grad():
        x = handler.preprocess([{"data": data}])
        logits = handler.model(x)[0, target] - handler.model(torch.zeros_like(x))[0, target]
        probabilities = (
            F.softmax(handler.model(x), 1)[0, target]
            - F.softmax(handler.model(torch.zeros_like(x)), 1)[0, target]
        )
    if abs(attribution_sum - want_sum) > 1e-3 * max(1.0, abs(want_sum)):
        raise Wrong(
            f"the attributions for digit {index}, class {target}, sum to {want_sum:.4f}, not "
            f"{attribution_sum:.4f}: sum the whole map handle answers with explain: True and target"
        )
    if abs(difference - float(probabilities)) < 1e-4:
        raise Wrong(
            "your difference is of probabilities: Integrated Gradients explains the model's "
            "output, "
            "here Net's log-probabilities; take model(x) - model(zeros) at target"
        )
    if abs(difference - float(logits)) > 1e-3 * max(1.0, abs(float(logits))):
        raise Wrong(
            f"the output difference for digit {index}, class {target}, is not {difference:.4f}: "
            "take model(x)[0, target] - model(zeros_like(x))[0, target], x the preprocessed input"
        )
    return [
        f"a fresh digit ({index}, class {target}): attribution sum {want_sum:.2f}, "
        f"output difference {float(logits):.2f}, gap {abs(want_sum - float(logits)):.2f}"
    ]


@exercise("08.wrong_digit", "find a held-out digit the model gets wrong; explain answer and label")
def check_wrong_digit(answer) -> list[str]:
    if not isinstance(answer, dict) or set(answer) != {"index", "for_answer", "for_label"}:
        raise Wrong("answer {'index': i, 'for_answer': attributions, 'for_label': attributions}")
    index = answer["index"]
    if not isinstance(index, int) or not 0 <= index < 5000 or index % 5:
        raise Wrong(f"index {index!r} is not a held-out digit: those are 0, 5, 10, ..., 4995")
    handler, context = digit_handler()
    data, label = samples.digit_png(index), samples.digit_label(index)
    said = handler.handle([{"data": data}], context.for_requests([{}]))[0]["digit"]
    if said == label:
        raise Wrong(
            f"digit {index} (label {label}) is answered {said}: right. "
            "Search for one the model gets wrong"
        )
    for key, target in (("for_answer", said), ("for_label", label)):
        if answer[key] is None or answer[key] is ...:
            raise NotYet(f"{key}: explain digit {index} for class {target}")
        got = torch.as_tensor(answer[key]).float()
        want = explain(handler, context, data, target)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4):
            zero = explain(handler, context, data, 0)
            hint = (
                " (it is the map for class 0: send the target)"
                if got.shape == zero.shape and torch.allclose(got, zero, atol=1e-4)
                else ""
            )
            raise Wrong(f"{key} is not the explanation of digit {index} for class {target}{hint}")
    return [
        f"digit {index}: label {label}, answered {said}",
        "both explanations are the right maps",
    ]


# ---- 04 · serve the handler with TorchServe -----------------------------------------------------


def blank_png() -> bytes:
    return samples.encode(Image.new("L", (28, 28), 255), "PNG")


@exercise("04.blank_in_batch", "send a blank page inside a batch; name the step that raises")
def check_blank_in_batch(answer) -> list[str]:
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise Wrong("answer (the served answers, the name of the step that raises)")
    answers, step = answer
    if step is None or step is ...:
        raise NotYet("name the step of digits.UPLOAD_STEPS that raises on a blank page")
    image = Image.open(io.BytesIO(blank_png()))
    raising = None
    for name, function in digits.UPLOAD_STEPS:
        try:
            image = function(image)
        except ValueError:
            raising = name
            break
    if not answers or answers[-1].status != 400:
        got = answers[-1].status if answers else "nothing"
        raise Wrong(f"the last answer should be the blank page's: a 400, got {got}")
    if "no ink" not in str(answers[-1].body):
        raise Wrong(
            f"the blank page's 400 should say why (no ink); it says {answers[-1].body!r:.80}"
        )
    if len(answers) < 2 or any(a.status != 200 for a in answers[:-1]):
        raise Wrong("send the blank page with digits in the same batch: the digits must get 200s")
    if step != raising:
        raise Wrong(f"{step!r} does not raise on a blank page: step through digits.UPLOAD_STEPS")
    return [
        f"{len(answers) - 1} digits answered 200 beside the blank page's 400 (no ink)",
        f"{raising} is the step that raises",
    ]


@exercise("04.manifest", "write read_manifest(mar): the model entry of a .mar's MANIFEST.json")
def check_manifest(read_manifest) -> list[str]:
    import json
    import tempfile
    import zipfile
    from pathlib import Path

    model = {"modelName": "fresh", "serializedFile": "w.pt", "handler": "h.py", "modelVersion": "7"}
    with tempfile.TemporaryDirectory() as work:
        mar = Path(work) / "fresh.mar"
        with zipfile.ZipFile(mar, "w") as archive:
            archive.writestr(
                "MAR-INF/MANIFEST.json", json.dumps({"runtime": "python", "model": model})
            )
            archive.writestr("h.py", "# a handler\n")
        got = read_manifest(mar)
    if got is None:
        raise NotYet("read_manifest returns None: return the manifest's model entry")
    if isinstance(got, dict) and "model" in got:
        raise Wrong("that is the whole manifest: answer only its 'model' entry")
    if got != model:
        raise Wrong(f"a fresh .mar's model entry is {model}; read_manifest gave {got!r:.120}")
    return ["a fresh .mar: its model entry, read from MAR-INF/MANIFEST.json"]


# ---- 06 · your own handler, offline -------------------------------------------------------------


def one_of_each_label() -> dict[int, bytes]:
    """One held-out digit PNG per label 0..9."""
    found: dict[int, bytes] = {}
    for index in range(0, 5000, 5):
        found.setdefault(samples.digit_label(index), samples.digit_png(index))
        if len(found) == 10:
            return dict(sorted(found.items()))
    return dict(sorted(found.items()))


@exercise("06.postprocess_bug", "put the bug in postprocess: which stage, which digits still 200")
def check_postprocess_bug(answer) -> list[str]:
    import tempfile
    from pathlib import Path

    from ..offline import OfflineServer
    from .capstone import model_folder

    if not isinstance(answer, dict) or set(answer) != {"handler", "stage", "ok_labels"}:
        raise Wrong("answer {'handler': source, 'stage': name, 'ok_labels': set of labels}")
    with tempfile.TemporaryDirectory() as work:
        folder = model_folder(answer["handler"], Path(work))
        with OfflineServer({"buggy": folder}) as offline:
            if offline.load_error("buggy") is not None:
                raise Wrong(f"your handler does not load: {offline.load_error('buggy').message}")
            answers = {
                label: offline.predict("buggy", png) for label, png in one_of_each_label().items()
            }
    stages = {a.error.stage for a in answers.values() if a.error is not None}
    ok = {label for label, a in answers.items() if a.status == 200}
    if stages != {"postprocess"}:
        raise Wrong(
            f"the bug must be in postprocess; your handler fails in {sorted(stages) or 'nothing'}"
        )
    if answer["stage"] != "postprocess":
        raise Wrong(f"answer.error.stage names 'postprocess', not {answer['stage']!r}")
    if set(answer["ok_labels"]) != ok:
        raise Wrong(f"ok_labels {sorted(answer['ok_labels'])} are not the labels answered 200")
    return [f"the bug fails in postprocess; labels {sorted(ok)} still get 200"]


@exercise("06.multipart", "write multipart(png): a form body and headers TorchServe reads as data")
def check_multipart(multipart) -> list[str]:
    from ..offline import OfflineServer

    png = samples.digit_png(1805)
    got = multipart(png)
    if got is None:
        raise NotYet("multipart returns None: return (body bytes, headers dict)")
    if not isinstance(got, tuple) or len(got) != 2 or not isinstance(got[0], (bytes, bytearray)):
        raise Wrong(f"answer (body as bytes, headers as a dict); got {got!r:.80}")
    body, headers = got
    kind = {k.lower(): v for k, v in dict(headers).items()}.get("content-type", "")
    if not kind.startswith("multipart/form-data") or "boundary=" not in kind:
        raise Wrong(f"Content-Type must be multipart/form-data; boundary=...; got {kind!r}")
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        plain = offline.predict("mnist", png, {"Content-Type": "image/png"})
        form = offline.predict("mnist", bytes(body), dict(headers))
    if (form.status, form.body) != (plain.status, plain.body):
        raise Wrong(
            f"the form was answered {form.status} {form.text[:100]}, the PNG {plain.status}: "
            "is the field named data, and the boundary the one in the header?"
        )
    return ["a fresh PNG sent as a form: the same status and bytes as sent plain"]


# ---- 07 · where your handler goes next ----------------------------------------------------------


@exercise(
    "07.everywhere", "write ask_everywhere(body): {engine: (status, bytes)} from every server"
)
def check_everywhere(ask_everywhere) -> list[str]:
    from ..offline import OfflineServer

    sent = {
        "digit 2810": samples.digit_png(2810),
        "blank page": blank_png(),
        "not an image": b"oops",
    }
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        want = {name: offline.predict("mnist", body) for name, body in sent.items()}
    passed = []
    for name, body in sent.items():
        got = ask_everywhere(body)
        if got is None:
            raise NotYet("ask_everywhere returns None: return {engine: (status, body bytes)}")
        if not isinstance(got, dict) or len(got) < 3:
            raise Wrong(f"answer one (status, bytes) per engine, for all three; got {got!r:.100}")
        for engine, answer in got.items():
            status, data = answer[0], answer[-1]
            if not isinstance(data, (bytes, bytearray)):
                raise Wrong(f"{engine}: answer the body's bytes, not {type(data).__name__}")
            if (status, bytes(data)) != (want[name].status, want[name].body):
                raise Wrong(
                    f"{name}: {engine} answered {status} {bytes(data)[:60]!r}, "
                    f"TorchServe's rules say {want[name].status} {want[name].body[:60]!r}"
                )
        passed.append(
            f"{name}: {', '.join(got)} all answer {want[name].status} with the same bytes"
        )
    return passed


@exercise("07.litapi", "write DigitAPI: setup, decode_request, predict, encode_response")
def check_litapi(api_class) -> list[str]:
    import base64

    from .. import UploadedDigitClassifier

    methods = ("setup", "decode_request", "predict", "encode_response")
    own = [
        k for k in api_class.__mro__ if k is not object and not k.__module__.startswith("litserve")
    ]
    written = [m for m in methods if any(m in vars(k) for k in own)]
    if not written:
        raise NotYet(f"{api_class.__name__} has none of {', '.join(methods)} yet: write them")
    if len(written) < len(methods):
        missing = [m for m in methods if m not in written]
        raise Wrong(f"{api_class.__name__} still needs {', '.join(missing)}")
    api = api_class()
    api.setup("cpu")
    reference, context = UploadedDigitClassifier.for_folder(samples.MNIST_DIR)
    sent = {f"digit {i}": samples.digit_png(i) for i in (15, 1230, 3335, 4440)}
    sent["photo of digit 700"] = photo_of(700)
    for name, data in sent.items():
        request = {"data": base64.b64encode(data).decode()}
        x = api.decode_request(request)
        if x is None:
            raise NotYet("decode_request returns None: decode the base64 and prepare the upload")
        answer = api.encode_response(api.predict(x))
        if answer is None:
            raise NotYet("predict or encode_response returns None")
        want = reference.handle([{"data": data}], context.for_requests([{}]))[0]["digit"]
        if not isinstance(answer, dict) or answer.get("digit") != want:
            raise Wrong(
                f"{name}: your API answers {answer!r:.80}, the handler {{'digit': {want}}}"
                f"{' (is the digit an int?)' if isinstance(answer, dict) else ''}"
            )
    return [f"{len(sent)} fresh uploads, a photo among them: the same digit as the handler"]


# ---- 09 · awkward uploads ------------------------------------------------------------------------
# (kept together at the end of the file: the block for notebook 09)


def awkward_payloads() -> tuple[bytes, dict[str, str], list[str]]:
    """(the image, {what: base64 text as a tool writes it}, [texts that are not base64])."""
    import base64

    raw = samples.digit_png(3210)
    plain = base64.b64encode(raw).decode()
    written = {
        "plain base64": plain,
        "MIME base64 (a line break every 76 characters)": base64.encodebytes(raw).decode(),
        "MIME base64 with CRLF line breaks": base64.encodebytes(raw).decode().replace("\n", "\r\n"),
        "a data: URL (canvas.toDataURL)": "data:image/png;base64," + plain,
        "a data: URL with spaces around it": "  data:image/png;base64," + plain + "\n",
    }
    junk = ["hello, this is not an image", "data:image/png;base64,@@@@", plain[:-4] + "!!!!"]
    return raw, written, junk


@exercise("09.decode_payload", "write decode_payload(text): base64 as tools write it -> bytes")
def check_decode_payload(decode_payload) -> list[str]:
    raw, written, junk = awkward_payloads()
    for what, text in written.items():
        hint = (
            "the prefix up to 'base64,' is not base64: strip it first"
            if "data:" in what
            else "drop the line breaks and spaces before decoding"
        )
        try:
            got = decode_payload(text)
        except Exception as error:  # noqa: BLE001 - a good payload refused: say which and why
            raise Wrong(
                f"{what}: refused with {type(error).__name__}: {str(error)[:80]}\n{hint}"
            ) from None
        if got is None:
            raise NotYet("decode_payload returns None: return the decoded bytes")
        if not isinstance(got, (bytes, bytearray)):
            raise Wrong(f"{what}: return bytes, not {type(got).__name__}")
        if bytes(got) != raw:
            raise Wrong(f"{what}: decoded to {len(got)} bytes, not the PNG's {len(raw)}\n{hint}")
    for text in junk:
        try:
            got = decode_payload(text)
        except ValueError:  # binascii.Error and handlerkit's RequestError are ValueErrors
            continue
        raise Wrong(
            f"{text[:30]!r}... is not base64, but decode_payload returned "
            f"{len(got) if isinstance(got, (bytes, bytearray)) else got!r} bytes: refuse it "
            "(raise ValueError; base64.b64decode(..., validate=True) does), or the handler "
            "would try to open junk"
        )
    return [
        f"{len(written)} ways tools write base64: the same {len(raw)} PNG bytes each time",
        f"{len(junk)} texts that are not base64: refused with ValueError",
    ]


def status_quiz() -> dict[str, bytes]:
    """Five uploads for notebook 09's quiz: predict the status ImageClassifier answers each."""
    photo = samples.photo("coffee")
    half = samples.encode(photo, "PNG")
    return {
        "coffee.gif": samples.encode(photo.convert("P"), "GIF"),
        "a 1x3000 PNG": samples.zeros_png(1, 3000),
        "coffee.ico": samples.encode(photo.resize((64, 64)), "ICO"),
        "the first half of coffee.png": half[: len(half) // 2],
        "a JPEG declaring 12000x9000": samples.jpeg_declaring(12_000, 9_000),
    }


# handler.py of a model folder that serves handlerkit's ImageClassifier (as notebook 09 writes it)
CLASSIFIER_HANDLER = (
    "from handlerkit import ImageClassifier\n\n\nclass Handler(ImageClassifier):\n    pass\n"
)

STATUS_HINTS = {
    200: "it opens and is answered: its format is on the list and nothing about it is too big",
    400: "the request is at fault, but not for its size or its format: can it be decoded?",
    413: "too many pixels: in the header (the pixel limit), or after a Resize (a thin strip)",
    415: "the bytes are an image, in a format outside the allow-list",
    500: "the model fails on every row: the server's fault",
}


@exercise("09.statuses", "predict the status ImageClassifier answers to each of five uploads")
def check_statuses(predicted) -> list[str]:
    import tempfile
    from pathlib import Path

    from ..offline import OfflineServer

    quiz = status_quiz()
    if not isinstance(predicted, dict) or set(predicted) != set(quiz):
        names = ", ".join(repr(name) for name in quiz)
        raise Wrong(f"answer {{name: status}} for each upload of status_quiz(): {names}")
    if any(status is ... or status is None for status in predicted.values()):
        left = [name for name, status in predicted.items() if status is ... or status is None]
        raise NotYet(f"still to predict: {', '.join(left)}")
    with tempfile.TemporaryDirectory() as work:
        folder = samples.efficientnet_folder(Path(work) / "efficientnet")
        (folder / "handler.py").write_text(CLASSIFIER_HANDLER)
        with OfflineServer({"classifier": folder}) as server:
            answers = {name: server.predict("classifier", body) for name, body in quiz.items()}
    wrong = [name for name in quiz if predicted[name] != answers[name].status]
    if wrong:
        lines = [f"{len(quiz) - len(wrong)} of {len(quiz)} right; still wrong:"]
        for name in wrong:
            hint = STATUS_HINTS.get(answers[name].status, "send it and read the answer")
            lines.append(f"{name}: not {predicted[name]!r}; hint: {hint}")
        raise Wrong("\n".join(lines))
    return [f"{name}: {answers[name].status} {said(answers[name])}" for name in quiz]


def said(answer) -> str:
    """The start of an answer's message, or its top-1 label."""
    body = answer.json()
    text = body.get("error") or next(iter(body), "") if isinstance(body, dict) else body
    return str(text)[:70]
