"""The exercises' checks, both ways: the worked solution passes, a typical wrong answer does not.

The solutions are read from notebooks/solutions/ (the code between the solution markers), so the
tests check the answers the learner is shown; the wrong answers are the mistakes the messages
name. Student notebooks are made from the solutions; `test_student_notebooks_in_sync` keeps them so.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from handlerkit import digits, exercises, samples, trace
from handlerkit.exercises import build
from handlerkit.offline import OfflineServer
from handlerkit.serve import Answer

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"
HAVE_JAVA = shutil.which("java") is not None


def solution(notebook: str, name: str) -> str:
    """The solution block of the cell of `notebook` (a prefix, "03") that checks exercise `name`."""
    path = next(SOLUTIONS.glob(f"{notebook}_*.ipynb"))
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and f'exercises.check("{name}"' in cell.source:
            found = re.search(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", cell.source, re.S)
            return found.group(1)
    raise LookupError(f"no check of {name} in {path.name}")


def answer_of(notebook: str, name: str, variable: str, **names):
    """Run the solution block with `names` defined; return what it binds to `variable`."""
    scope = {"F": F, "torch": torch, "digits": digits, "samples": samples, **names}
    exec(solution(notebook, name), scope)
    return scope[variable]


def passes(name: str, answer) -> exercises.Result:
    result = exercises.check(name, answer)
    assert result.passed, str(result)
    return result


def fails(name: str, answer, *phrases: str) -> exercises.Result:
    result = exercises.check(name, answer)
    assert result.status == "wrong", str(result)
    text = str(result)
    assert "Traceback" not in text
    for phrase in phrases:
        assert phrase in text, text
    return result


# ---- the machinery -----------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [..., None])
def test_unanswered_is_not_yet(answer):
    result = exercises.check("03.top3", answer)
    assert result.status == "not yet" and str(result).startswith("03.top3: not yet")


def test_a_function_left_as_dots_is_not_yet():
    def top3(data): ...

    assert exercises.check("03.top3", top3).status == "not yet"


def test_learner_code_that_raises_is_reported_not_raised():
    def top3(data):
        return data.digit

    result = fails("03.top3", top3, "your code raised")
    assert "at: return data.digit" in str(result)


def test_unknown_exercise_is_named():
    fails("03.nope", 1, "there is no exercise '03.nope'", "03.top3")


def test_student_source_takes_the_answers_out():
    source = (
        "x = 41 + 1  # SOLUTION\n"
        "def f(a):\n    # BEGIN SOLUTION\n    return a\n    # END SOLUTION\n"
        "# BEGIN SOLUTION\ny = 2\n# END SOLUTION\n"
        "# BEGIN PROMPT\n# y = ...  # yours\n# END PROMPT\n"
        'check("n", x)'
    )
    assert build.student_source(source) == (
        'x = ...\ndef f(a):\n    ...\ny = ...  # yours\ncheck("n", x)'
    )


def test_student_notebooks_in_sync():
    assert build.out_of_sync() == [], "run: python -m handlerkit.exercises build NN"


def test_every_checked_exercise_is_in_a_notebook():
    from handlerkit.exercises import checks  # noqa: F401

    cells = "".join(
        cell.source
        for path in SOLUTIONS.glob("*.ipynb")
        for cell in nbformat.read(path, as_version=4).cells
    )
    missing = [name for name in exercises.EXERCISES if f'exercises.check("{name}"' not in cells]
    assert not missing


# ---- 01 ----------------------------------------------------------------------------------------


def test_01_preprocess():
    from PIL import Image
    from torchvision import transforms

    names = {"io": io, "Image": Image, "transforms": transforms}
    preprocess_one = answer_of("01", "01.preprocess", "preprocess_one", **names)
    result = passes("01.preprocess", preprocess_one)
    assert "chelsea as a grayscale JPEG (L)" in str(result)
    imagenet = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

    def no_convert(data):  # a grayscale photo keeps its one channel
        image = Image.open(io.BytesIO(data))
        steps = [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
        return imagenet(transforms.Compose(steps)(image))

    fails("01.preprocess", no_convert, "The photo is L, one channel", "convert('RGB')")

    def squashed(data):  # Resize((224, 224)): no crop, the aspect ratio lost
        image = Image.open(io.BytesIO(data)).convert("RGB")
        return imagenet(transforms.ToTensor()(transforms.Resize((224, 224))(image)))

    fails("01.preprocess", squashed, "Resize((224, 224)) squashes the photo")


def test_01_top_k():
    top_k = answer_of("01", "01.top_k", "top_k")
    passes("01.top_k", top_k)

    def logits_kept(logits, mapping, k):  # forgot the softmax
        values, indexes = logits.topk(k, dim=1)
        return [
            {mapping[str(i)]: v for i, v in zip(row_i, row_v)}
            for row_i, row_v in zip(indexes.tolist(), values.tolist())
        ]

    fails("01.top_k", logits_kept, "those are logits", "apply softmax")

    def tensors(logits, mapping, k):  # the values stay tensors: not JSON
        values, indexes = torch.softmax(logits, dim=1).topk(k, dim=1)
        return [
            {mapping[str(int(i))]: v for i, v in zip(row_i, row_v)}
            for row_i, row_v in zip(indexes, values)
        ]

    fails("01.top_k", tensors, "make them plain floats")


# ---- 02 ----------------------------------------------------------------------------------------


def test_02_initialize():
    from handlerkit import loading

    initialize_by_hand = answer_of(
        "02", "02.initialize", "initialize_by_hand", loading=loading, Path=Path
    )
    result = passes("02.initialize", initialize_by_hand)
    assert "a fresh TorchScript folder" in str(result)

    def always_eager(handler, context):  # no modelFile in a TorchScript folder's manifest
        model_dir = Path(context.system_properties["model_dir"])
        model = context.manifest["model"]
        handler.device = loading.choose_device(context.system_properties["gpu_id"])
        handler.map_location, handler.manifest = handler.device.type, context.manifest
        handler.model = loading.load_eager_model(
            model_dir / model["modelFile"], model_dir / model["serializedFile"], handler.device
        )
        handler.mapping = loading.load_mapping(model_dir / "index_to_name.json")
        handler.initialized = True

    fails("02.initialize", always_eager, "on a TorchScript folder", "load_torchscript_model")

    def raw_labels(handler, context):  # json.loads keeps TorchServe's ["n00", "zero"] lists
        initialize_by_hand(handler, context)
        handler.mapping = json.loads(
            (Path(context.system_properties["model_dir"]) / "index_to_name.json").read_text()
        )

    fails("02.initialize", raw_labels, "with loading.load_mapping")
    fails("02.initialize", lambda h, c: h.initialize(c), "not handler.initialize")


def test_02_by_hand():
    handle_by_hand = answer_of("02", "02.by_hand", "handle_by_hand")
    result = passes("02.by_hand", handle_by_hand)
    assert "bad rows [1]" in str(result)

    def composed(handler, rows):  # the bad rows are missing from the answers
        return handler.postprocess(handler.inference(handler.preprocess(rows)))

    fails("02.by_hand", composed, "3 answers for 4 rows", "handler.row_errors")

    def always_inference(handler, rows):  # runs inference on None when no row is usable
        answers = handler.postprocess(handler.inference(handler.preprocess(rows)))
        return handler.merge_errors(answers, len(rows))

    fails("02.by_hand", always_inference, "preprocess returns None")


def test_02_stage_seconds():
    stage_seconds = answer_of("02", "02.stage_seconds", "stage_seconds")
    passes("02.stage_seconds", stage_seconds)

    def hook_left(handler, rows, context, calls):  # never removes its hook
        totals = {}

        def add(record):
            if record.kind == "stage":
                totals[record.stage] = totals.get(record.stage, 0.0) + record.seconds

        handler.register_trace_hook(add)
        for _ in range(calls):
            handler.handle(rows, context)
        return totals

    fails("02.stage_seconds", hook_left, "still registered", "call .remove()")

    def last_call(handler, rows, context, calls):  # one call's seconds, not their sum
        for _ in range(calls):
            with trace(handler, capture="summary") as t:
                handler.handle(rows, context)
        return {record.stage: record.seconds for record in t if record.kind == "stage"}

    fails("02.stage_seconds", last_call, "the last call's only")


@pytest.mark.parametrize(
    "name", ["01.preprocess", "01.top_k", "02.initialize", "02.by_hand", "02.stage_seconds"]
)
def test_01_02_unanswered_and_stubs_are_not_yet(name):
    """`...` is not yet, and so is the student notebook's function whose body is still `...`."""
    assert exercises.check(name, ...).status == "not yet"

    def stub(*args): ...

    assert exercises.check(name, stub).status == "not yet"


# ---- 03 ----------------------------------------------------------------------------------------


def test_03_top3():
    top3 = answer_of("03", "03.top3", "top3")
    passes("03.top3", top3)

    def log_probabilities(data):  # forgot the softmax
        answers = []
        for row in data:
            values, indexes = row.topk(3)
            answers.append(
                {"digit": int(indexes[0]), "top3": dict(zip(indexes.tolist(), values.tolist()))}
            )
        return answers

    fails("03.top3", log_probabilities, "log-probabilities", "apply softmax")


def test_03_without():
    from handlerkit import MNISTDigitClassifier  # noqa: F401

    my_upload = upload_handler_class()
    without = answer_of("03", "03.without", "without", MyUploadHandler=my_upload)
    result = passes("03.without", without)
    assert "without invert_if_light" in str(result)

    def in_place(step):  # removes the step from the shared list
        steps = my_upload.upload_steps
        steps[:] = [(n, s) for n, s in steps if n != step]
        return my_upload

    before = list(digits.UPLOAD_STEPS)
    fails("03.without", in_place, "changed digits.UPLOAD_STEPS")
    assert digits.UPLOAD_STEPS == before


def upload_handler_class():
    """Notebook 03's MyUploadHandler, as its cells define it (the classes, not the instances)."""
    path = next(SOLUTIONS.glob("03_*.ipynb"))
    classes = [
        re.split(r"\n(?:mine|custom) = ", cell.source)[0]
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code"
        and cell.source.startswith(("class MyMNISTHandler", "class MyUploadHandler"))
    ]
    scope = {"F": F, "digits": digits}
    exec(
        "import handlerkit\nfrom handlerkit import ImageClassifier\n"
        "from torchvision import transforms",
        scope,
    )
    exec("\n\n".join(classes), scope)
    return scope["MyUploadHandler"]


@pytest.mark.serve
def test_03_capstone_solution_served_offline_and_in_torchserve():
    handler_py = answer_of("03", "03.capstone", "HANDLER_PY")
    result = passes("03.capstone", handler_py)
    if HAVE_JAVA:
        assert "TorchServe gives the same 7 answers" in str(result)


def test_03_capstone_without_own_preprocess():
    inherited = (
        "from ts.torch_handler.image_classifier import ImageClassifier\n\n\n"
        "class Digits(ImageClassifier):\n"
        "    def postprocess(self, data):\n"
        "        return data.argmax(1).tolist()\n"
    )
    fails("03.capstone", inherited, "Digits inherits preprocess", "write your own")


def test_03_capstone_a_handler_that_fails_names_its_stage():
    handler_py = answer_of("03", "03.capstone", "HANDLER_PY")
    broken = handler_py.replace("digits.prepare_upload(", "digits.prepare_uploads(")
    fails("03.capstone", broken, "your preprocess raised", "prepare_uploads")


# ---- 04 ----------------------------------------------------------------------------------------


def served_like_torchserve(bodies: list[bytes]) -> list[Answer]:
    """What `TorchServe.predict` answers for `bodies` (same rules, offline): parsed bodies."""
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        return [
            Answer(a.status, json.loads(a.body))
            for a in (offline.predict("mnist", b) for b in bodies)
        ]


def test_04_blank_in_batch():
    blank = samples.encode(__import__("PIL.Image").Image.new("L", (28, 28), 255), "PNG")
    answers = served_like_torchserve([samples.digit_png(i) for i in (0, 500)] + [blank])
    passes("04.blank_in_batch", (answers, "crop_to_ink"))
    fails("04.blank_in_batch", (answers, "invert_if_light"), "'invert_if_light' does not raise")
    fails("04.blank_in_batch", (answers[:2], "crop_to_ink"), "the blank page's: a 400")


def test_04_manifest():
    read_manifest = answer_of(
        "04", "04.manifest", "read_manifest", json=json, zipfile=__import__("zipfile")
    )
    passes("04.manifest", read_manifest)

    def whole(mar):
        with __import__("zipfile").ZipFile(mar) as archive:
            return json.loads(archive.read("MAR-INF/MANIFEST.json"))

    fails("04.manifest", whole, "that is the whole manifest")


# ---- 05 ----------------------------------------------------------------------------------------


def test_05_stage_share():
    passes("05.stage_share", answer_of("05", "05.stage_share", "stage_share"))

    def every_record(trace):  # steps counted twice: once alone, once inside preprocess
        total = sum(record.seconds for record in trace)
        return {r.stage: r.seconds / total for r in trace if r.kind == "stage"}

    fails("05.stage_share", every_record, "add up to", "count them once")


def test_05_kept_rows():
    passes("05.kept_rows", answer_of("05", "05.kept_rows", "kept_rows"))
    fails("05.kept_rows", lambda t: {r.row for r in t if r.row is not None}, "only some keep")


# ---- 06 ----------------------------------------------------------------------------------------


def test_06_postprocess_bug(tmp_path):
    from handlerkit.serve import archive

    good = notebook_string("06", "GOOD = ")
    one_of_each = {samples.digit_label(i): i for i in range(0, 5000, 5)}
    names = {"WORK": tmp_path, "STORE": tmp_path / "store", "archive": archive, "GPU_ID": None}
    names |= {"OfflineServer": OfflineServer, "ONE_OF_EACH": one_of_each, "GOOD": good}
    answer = answer_of("06", "06.postprocess_bug", "postprocess_bug", **names)
    result = passes("06.postprocess_bug", answer)
    assert "labels [0, 1, 2] still get 200" in str(result)
    fails(
        "06.postprocess_bug",
        {**answer, "stage": "inference"},
        "names 'postprocess', not 'inference'",
    )
    fails("06.postprocess_bug", {**answer, "handler": good}, "fails in nothing")


def notebook_string(notebook: str, assignment: str) -> str:
    """A triple-quoted string a solution notebook assigns (`GOOD = '''...'''`)."""
    path = next(SOLUTIONS.glob(f"{notebook}_*.ipynb"))
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.source.startswith(assignment):
            return re.search(r"'''(.*?)'''", cell.source, re.S).group(1)
    raise LookupError(assignment)


def test_06_multipart():
    passes("06.multipart", answer_of("06", "06.multipart", "multipart"))
    multipart = answer_of("06", "06.multipart", "multipart")

    def no_boundary(png):
        body, _ = multipart(png)
        return body, {"Content-Type": "multipart/form-data"}

    fails("06.multipart", no_boundary, "boundary=")

    def wrong_field(png):
        body, headers = multipart(png)
        return body.replace(b'name="data"', b'name="image"'), headers

    fails("06.multipart", wrong_field, "is the field named data")


# ---- 07 ----------------------------------------------------------------------------------------


def test_07_everywhere_on_stand_ins():
    """The check's logic, with three offline servers standing in for the engines (nbval runs the
    notebook's solution on the real three)."""
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:

        def ask_everywhere(body):
            answer = offline.predict("mnist", body)
            return {e: (answer.status, answer.body) for e in ("torchserve", "litserve", "ray")}

        def parsed(body):
            return {e: (s, json.loads(b)) for e, (s, b) in ask_everywhere(body).items()}

        passes("07.everywhere", ask_everywhere)
        fails("07.everywhere", parsed, "answer the body's bytes")


def test_07_litapi():
    import litserve as ls
    from PIL import Image

    from handlerkit import UploadedDigitClassifier
    from handlerkit.digits import prepare_upload

    names = {"ls": ls, "Image": Image, "UploadedDigitClassifier": UploadedDigitClassifier}
    api = answer_of(
        "07", "07.litapi", "DigitAPI", base64=base64, io=io, prepare_upload=prepare_upload, **names
    )
    passes("07.litapi", api)

    class NoInvert(api):  # MNIST's own transforms: fine on MNIST, wrong on a photo
        def decode_request(self, request):
            from PIL import Image
            from torchvision import transforms

            image = (
                Image.open(io.BytesIO(base64.b64decode(request["data"])))
                .convert("L")
                .resize((28, 28))
            )
            prepare = transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
            )
            return prepare(image)

    fails("07.litapi", NoInvert, "photo of digit 700")

    class Empty(ls.LitAPI):  # the student notebook's `class DigitAPI(ls.LitAPI): ...`
        ...

    assert exercises.check("07.litapi", Empty).status == "not yet"


# ---- 08 ----------------------------------------------------------------------------------------


def test_08_completeness():
    completeness = answer_of("08", "08.completeness", "completeness")
    passes("08.completeness", completeness)

    def of_probabilities(handler, context, data, target):
        attribution_sum, _ = completeness(handler, context, data, target)
        with torch.no_grad():
            x = handler.preprocess([{"data": data}])
            p, p0 = (F.softmax(handler.model(v), 1)[0, target] for v in (x, torch.zeros_like(x)))
        return attribution_sum, float(p - p0)

    fails("08.completeness", of_probabilities, "your difference is of probabilities")


def test_08_wrong_digit():
    from handlerkit import UploadedDigitClassifier

    digits_handler, digit_context = UploadedDigitClassifier.for_folder(samples.MNIST_DIR)
    names = {"digits": digits_handler, "digit_context": digit_context}
    answer = answer_of("08", "08.wrong_digit", "wrong_digit", **names)
    passes("08.wrong_digit", answer)
    index = answer["index"]
    rows = [{"data": samples.digit_png(index)}]  # no target: class 0's evidence
    class_0 = digits_handler.handle(rows, digit_context.for_requests([{"explain": "True"}]))[0]
    fails("08.wrong_digit", {**answer, "for_label": class_0}, "it is the map for class 0")
    fails("08.wrong_digit", {**answer, "index": 1200}, "right. Search for one")


# ---- 09 ----------------------------------------------------------------------------------------


def test_09_decode_payload():
    decode_payload = answer_of("09", "09.decode_payload", "decode_payload", base64=base64, re=re)
    passes("09.decode_payload", decode_payload)

    def lenient(text):  # no validate=True: junk text decodes to junk bytes instead of an error
        body = re.sub(r"^data:[^,]*;base64,", "", text.strip())
        return base64.b64decode("".join(body.split()))

    fails("09.decode_payload", lenient, "is not base64, but decode_payload returned", "ValueError")
    fails("09.decode_payload", base64.b64decode, "a data: URL", "strip it first")

    def prefix_kept(text):  # MIME lines handled, the data: URL's prefix decoded along
        return base64.b64decode("".join(text.split()).replace(":", "").replace(";", ""))

    fails("09.decode_payload", prefix_kept, "a data: URL")

    def stub(text): ...

    assert exercises.check("09.decode_payload", stub).status == "not yet"


def test_09_statuses():
    from handlerkit.exercises.checks import status_quiz

    predicted = answer_of("09", "09.statuses", "predicted")
    result = passes("09.statuses", predicted)
    assert "a 1x3000 PNG: 413 Resize(256)" in str(result)
    everything_fine = {name: 200 for name in status_quiz()}
    fails(
        "09.statuses",
        everything_fine,
        "1 of 5 right",
        "coffee.ico: not 200; hint: the bytes are an image, in a format outside the allow-list",
    )
    fails("09.statuses", {"coffee.gif": 200}, "answer {name: status} for each upload")
    unanswered = {name: ... for name in status_quiz()}
    assert exercises.check("09.statuses", unanswered).status == "not yet"


# ---- issue 28: wrong answers that passed, blame in the wrong place, right values of other types --


def test_03_without_a_subclass_whose_steps_never_run():
    """upload_steps set right, but the class's transform never runs them: refused."""
    my_upload = upload_handler_class()
    my_mnist = my_upload.__mro__[1]  # MyMNISTHandler: its transform ignores upload_steps

    def wrong_parent(step):  # subclasses MyMNISTHandler: upload_steps is only a label
        steps = [(n, f) for n, f in digits.UPLOAD_STEPS if n != step]
        return type("Skip", (my_mnist,), {"upload_steps": steps})

    fails("03.without", wrong_parent, "but on a photo its handler ran", "keep MyUploadHandler")

    def own_transform(step):  # says it skips the step, runs them all
        class Skip(my_upload):
            upload_steps = [(n, f) for n, f in digits.UPLOAD_STEPS if n != step]

            def transform(self, image, idx):
                return digits.prepare_upload(image)

        return Skip

    fails("03.without", own_transform, "no upload step")


def test_06_multipart_without_its_closing_boundary():
    """TorchServe's decoder hands the handler no field when the form is not closed."""
    multipart = answer_of("06", "06.multipart", "multipart")

    def unclosed(png):
        body, headers = multipart(png)
        return body[: body.rindex(b"\r\n--")], headers

    fails("06.multipart", unclosed, "closing delimiter --", "gets no data")

    body, headers = unclosed(samples.digit_png(1805))
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        answer = offline.predict("mnist", body, headers)
    assert answer.status == 400 and b"empty request" in answer.body  # as ts's worker answers {}


def test_03_capstone_a_blank_page_answered_503_is_refused():
    """A blank page is the client's fault: a 4xx, not the 503 an escaping ValueError gives."""
    handler_py = answer_of("03", "03.capstone", "HANDLER_PY")
    escapes = handler_py.replace(
        "            except ValueError as error:  # a blank page: no ink to find\n"
        "                raise PredictionException(str(error), 400) from None\n",
        "            finally:\n                pass\n",
    )
    assert escapes != handler_py
    fails("03.capstone", escapes, "blank page (PNG): status 503", "a 4xx", "PredictionException")


def test_your_code_raised_quotes_only_the_learners_line():
    from pathlib import Path as P

    def read_manifest(mar):  # the error is raised inside pathlib, called from this line
        return P(mar).with_suffix(7)

    result = fails("04.manifest", read_manifest, "your code raised TypeError")
    assert "at: return P(mar).with_suffix(7)" in str(result)


def test_an_error_inside_the_check_names_the_answer_not_the_checks_line():
    def top3(data):  # the indexes stay tensors: dict keys the check cannot use as digits
        answers = []
        for p in F.softmax(data, dim=1):
            values, indexes = p.topk(3)
            answers.append({"digit": int(indexes[0]), "top3": dict(zip(indexes, values.tolist()))})
        return answers

    result = fails("03.top3", top3, "the keys of top3 are Tensors", "plain ints")
    assert "at:" not in str(result) and "allclose" not in str(result)


def test_a_checks_own_indexing_warns_nothing():
    import warnings

    def top3(data):
        answers = []
        for p in F.softmax(data, dim=1):
            values, indexes = p.topk(3)
            answers.append({"digit": int(indexes[0]), "top3": dict(zip(indexes, values.tolist()))})
        return answers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exercises.check("03.top3", top3)
    assert [str(w.message)[:80] for w in caught] == []


def test_08_wrong_digit_index_of_any_integer_type():
    import numpy as np

    from handlerkit import UploadedDigitClassifier

    digits_handler, digit_context = UploadedDigitClassifier.for_folder(samples.MNIST_DIR)
    names = {"digits": digits_handler, "digit_context": digit_context}
    answer = answer_of("08", "08.wrong_digit", "wrong_digit", **names)
    passes("08.wrong_digit", {**answer, "index": np.int64(answer["index"])})
    passes("08.wrong_digit", {**answer, "index": torch.tensor(answer["index"])})
    fails("08.wrong_digit", {**answer, "index": str(answer["index"])}, "a str", "whole number")
    fails("08.wrong_digit", {**answer, "index": float(answer["index"])}, "a float")


def test_09_statuses_of_other_types():
    import numpy as np

    predicted = answer_of("09", "09.statuses", "predicted")
    passes("09.statuses", {name: np.int64(status) for name, status in predicted.items()})
    as_text = {name: str(status) for name, status in predicted.items()}
    result = fails("09.statuses", as_text, "is a str", "as a whole number")
    assert "0 of 5 right" not in str(result)


def test_09_decode_payload_that_expects_a_prefix_gets_the_right_hint():
    def after_comma(text):
        return base64.b64decode(text.split(",")[1], validate=True)

    result = fails("09.decode_payload", after_comma, "plain base64: refused", "IndexError")
    text = str(result)
    assert "at: return base64.b64decode(text.split" in text
    assert "no 'data:...,' prefix" in text and "line breaks and spaces" not in text


def test_08_completeness_from_a_black_image_is_named():
    """The old text taught "a black image" as the baseline; the check names that mistake."""
    from handlerkit import digits as steps

    completeness = answer_of("08", "08.completeness", "completeness")

    def from_black(handler, context, data, target):
        attribution_sum, _ = completeness(handler, context, data, target)
        with torch.no_grad():
            x = handler.preprocess([{"data": data}])
            black = torch.full_like(x, -steps.MEAN[0] / steps.STD[0])
            return attribution_sum, float(
                handler.model(x)[0, target] - handler.model(black)[0, target]
            )

    fails("08.completeness", from_black, "starts from a black image", "torch.zeros_like(x)")
