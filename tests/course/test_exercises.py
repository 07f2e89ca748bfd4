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

SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"
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
    """What `TorchServe.predict` answers for `bodies`: the same rules, offline."""
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        return [offline.predict("mnist", b) for b in bodies]


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
    assert answer.status == 400 and b"without its closing boundary" in answer.body  # ts: no field


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


# ---- wrong answers as learners write them: at least four per exercise, none passes ------------
# Each is a mistake a learner makes (off by one, wrong type, wrong key, another exercise's answer,
# a hard-coded value, a partly right answer); `refused` asserts the check does not pass it and
# shows no traceback. Property-style where the exercise allows: every reordering of a right answer
# that should pass passes, and every single-field corruption fails.


def refused(name: str, answer) -> exercises.Result:
    result = exercises.check(name, answer)
    assert not result.passed, f"{name} passed a wrong answer: {result}"
    assert "Traceback" not in str(result)
    return result


def test_01_preprocess_more_wrong_answers():
    from PIL import Image
    from torchvision import transforms

    def to_tensor_only(data):  # forgot Normalize
        image = Image.open(io.BytesIO(data)).convert("RGB")
        steps = [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
        return transforms.Compose(steps)(image)

    refused("01.preprocess", to_tensor_only)

    def batched(data):  # a batch of one: (1, 3, 224, 224)
        return answer_of("01", "01.preprocess", "preprocess_one", **_names01())(data).unsqueeze(0)

    assert "without a batch dimension" in str(refused("01.preprocess", batched))

    def lite_normalization(data):  # notebook 01's EfficientNet-Lite [-1, 1] scaling
        return to_tensor_only(data) * 2 - 1

    assert "EfficientNet-Lite" in str(refused("01.preprocess", lite_normalization))

    def as_numpy(data):  # the right values, as a numpy array
        return answer_of("01", "01.preprocess", "preprocess_one", **_names01())(data).numpy()

    assert "not ndarray" in str(refused("01.preprocess", as_numpy))


def _names01():
    from PIL import Image
    from torchvision import transforms

    return {"io": io, "Image": Image, "transforms": transforms}


def test_01_top_k_more_wrong_answers():
    right = answer_of("01", "01.top_k", "top_k")

    def over_the_batch(logits, mapping, k):  # softmax over dim=0
        return right(logits.t().softmax(1).t().log(), mapping, k)

    refused("01.top_k", over_the_batch)

    def indexes(logits, mapping, k):  # class indexes as keys
        values, classes = logits.softmax(1).topk(k)
        return [dict(zip(c.tolist(), v.tolist())) for c, v in zip(classes, values)]

    assert "class indexes" in str(refused("01.top_k", indexes))
    refused("01.top_k", lambda logits, mapping, k: right(logits, mapping, 5))  # k ignored
    refused("01.top_k", lambda logits, mapping, k: right(logits, mapping, k)[0])  # one row only

    def worst_first(logits, mapping, k):
        return [dict(reversed(list(row.items()))) for row in right(logits, mapping, k)]

    assert "another order" in str(refused("01.top_k", worst_first))


def test_02_initialize_more_wrong_answers():
    from handlerkit import loading

    right = answer_of("02", "02.initialize", "initialize_by_hand", loading=loading, Path=Path)

    def never_initialized(handler, context):
        right(handler, context)
        handler.initialized = False

    assert "set it to True" in str(refused("02.initialize", never_initialized))

    def training_mode(handler, context):
        right(handler, context)
        handler.model.train()

    assert "training mode" in str(refused("02.initialize", training_mode))

    def always_cpu_string(handler, context):  # a str where a torch.device belongs
        right(handler, context)
        handler.device = "cpu"

    refused("02.initialize", always_cpu_string)

    def no_mapping(handler, context):
        right(handler, context)
        handler.mapping = None

    refused("02.initialize", no_mapping)


def test_02_by_hand_more_wrong_answers():
    right = answer_of("02", "02.by_hand", "handle_by_hand")
    refused("02.by_hand", lambda handler, rows: right(handler, rows)[:-1])  # one answer short
    refused("02.by_hand", lambda handler, rows: [str(a) for a in right(handler, rows)])  # strs

    def errors_as_text(handler, rows):  # the bad row's error as a bare string
        return [a["error"] if isinstance(a, dict) else a for a in right(handler, rows)]

    refused("02.by_hand", errors_as_text)
    passes("02.by_hand", lambda handler, rows: right(handler, rows[::-1])[::-1])  # same answers
    refused("02.by_hand", lambda handler, rows: [0] * len(rows))  # a hard-coded answer


def test_02_stage_seconds_more_wrong_answers():
    right = answer_of("02", "02.stage_seconds", "stage_seconds")

    def milliseconds(handler, rows, context, calls):
        return {s: 1000 * v for s, v in right(handler, rows, context, calls).items()}

    refused("02.stage_seconds", milliseconds)

    def one_call(handler, rows, context, calls):  # ran handle once only
        return right(handler, rows, context, 1)

    refused("02.stage_seconds", one_call)

    def every_record(handler, rows, context, calls):  # steps counted as stages
        totals = {}
        with trace(handler, capture="summary") as t:
            for _ in range(calls):
                handler.handle(rows, context)
        for record in t:
            totals[record.stage] = totals.get(record.stage, 0.0) + record.seconds
        return totals

    assert "keep only records of kind 'stage'" in str(refused("02.stage_seconds", every_record))

    def as_list(handler, rows, context, calls):
        return list(right(handler, rows, context, calls).values())

    refused("02.stage_seconds", as_list)


def test_03_top3_more_wrong_answers():
    right = answer_of("03", "03.top3", "top3")

    def never_unsure(data):
        return [{k: v for k, v in a.items() if k != "unsure"} for a in right(data)]

    assert "only below 0.5" in str(refused("03.top3", never_unsure))

    def string_keys(data):  # JSON-style keys: "3" instead of 3
        return [{**a, "top3": {str(k): v for k, v in a["top3"].items()}} for a in right(data)]

    assert "plain ints" in str(refused("03.top3", string_keys))

    def off_by_one(data):  # the digit of the second likeliest class
        return [{**a, "digit": list(a["top3"])[1]} for a in right(data)]

    assert "likeliest digit" in str(refused("03.top3", off_by_one))

    def tensor_digit(data):
        return [{**a, "digit": torch.tensor(a["digit"])} for a in right(data)]

    assert "plain int" in str(refused("03.top3", tensor_digit))
    refused("03.top3", lambda data: right(data)[0])  # one answer for the batch


def test_03_without_more_wrong_answers():
    my_upload = upload_handler_class()
    right = answer_of("03", "03.without", "without", MyUploadHandler=my_upload)
    assert "must return a class" in str(refused("03.without", lambda step: right(step)()))
    refused("03.without", lambda step: my_upload)  # every step kept

    def next_step(step):  # off by one: skips the step after
        names = [n for n, _ in digits.UPLOAD_STEPS]
        return right(names[names.index(step) + 1])

    refused("03.without", next_step)

    def hard_coded(step):  # always without invert_if_light
        return right("invert_if_light")

    refused("03.without", hard_coded)


def test_04_blank_in_batch_more_wrong_answers():
    blank = samples.encode(__import__("PIL.Image").Image.new("L", (28, 28), 255), "PNG")
    answers = served_like_torchserve([samples.digit_png(i) for i in (0, 500)] + [blank])
    refused("04.blank_in_batch", answers)  # the answers only, no step
    refused("04.blank_in_batch", ("crop_to_ink", answers))  # swapped
    refused("04.blank_in_batch", (answers, "crop to ink"))  # not the step's name
    refused("04.blank_in_batch", (answers, "fit_20x20"))  # the step after
    refused("04.blank_in_batch", ([answers[-1]], "crop_to_ink"))  # the blank page alone


def test_04_manifest_more_wrong_answers_and_properties():
    right = answer_of(
        "04", "04.manifest", "read_manifest", json=json, zipfile=__import__("zipfile")
    )
    refused("04.manifest", lambda mar: json.dumps(right(mar)))  # the JSON text
    refused(
        "04.manifest", lambda mar: {"modelName": "mnist", "handler": "handler.py"}
    )  # hard-coded
    refused("04.manifest", lambda mar: list(right(mar).items()))
    refused("04.manifest", lambda mar: {k: v for k, v in right(mar).items() if k != "handler"})
    # any order of the entry's keys is the same entry; any single changed value is not
    for seed in range(4):
        rng = __import__("random").Random(seed)

        def shuffled(mar, rng=rng):
            items = list(right(mar).items())
            rng.shuffle(items)
            return dict(items)

        passes("04.manifest", shuffled)
    for key in ("modelName", "serializedFile", "handler", "modelVersion"):
        refused("04.manifest", lambda mar, key=key: {**right(mar), key: "x"})


def test_05_stage_share_more_wrong_answers_and_properties():
    right = answer_of("05", "05.stage_share", "stage_share")

    def percent(t):
        return {s: 100 * v for s, v in right(t).items()}

    refused("05.stage_share", percent)

    def seconds(t):
        return {r.stage: r.seconds for r in t if r.kind == "stage"}

    refused("05.stage_share", seconds)
    refused("05.stage_share", lambda t: {"inference": 1.0})  # the slowest stage only
    refused("05.stage_share", lambda t: dict(zip(right(t), reversed(right(t).values()))))
    for order in __import__("itertools").permutations(range(3)):

        def reordered(t, order=order):
            items = list(right(t).items())
            return dict(items[i] for i in order)

        passes("05.stage_share", reordered)


def test_05_kept_rows_more_wrong_answers():
    refused("05.kept_rows", lambda t: set(range(6)))  # every request
    refused("05.kept_rows", lambda t: {0, 1})  # hard-coded from max_rows=2
    refused(
        "05.kept_rows",
        lambda t: {r.row + 1 for r in t if r.row is not None and r.output is not None},
    )
    refused("05.kept_rows", lambda t: set())


def test_06_postprocess_bug_more_wrong_answers(tmp_path):
    from handlerkit.serve import archive

    good = notebook_string("06", "GOOD = ")
    one_of_each = {samples.digit_label(i): i for i in range(0, 5000, 5)}
    names = {"WORK": tmp_path, "STORE": tmp_path / "store", "archive": archive, "GPU_ID": None}
    names |= {"OfflineServer": OfflineServer, "ONE_OF_EACH": one_of_each, "GOOD": good}
    answer = answer_of("06", "06.postprocess_bug", "postprocess_bug", **names)
    refused("06.postprocess_bug", {**answer, "ok_labels": {"zero", "one", "two"}})  # labels' names
    refused("06.postprocess_bug", {**answer, "ok_labels": {0, 1, 2, 3}})  # off by one
    refused("06.postprocess_bug", {**answer, "stage": "handle"})
    refused("06.postprocess_bug", (answer["handler"], "postprocess", {0, 1, 2}))  # a tuple


def test_06_multipart_more_wrong_answers():
    right = answer_of("06", "06.multipart", "multipart")

    def base64_inside(png):  # the PNG as base64 text inside the form
        return right(base64.b64encode(png))

    refused("06.multipart", base64_inside)

    def other_boundary(png):  # the header names a boundary the body does not use
        body, headers = right(png)
        return body, {"Content-Type": "multipart/form-data; boundary=another"}

    refused("06.multipart", other_boundary)
    refused("06.multipart", lambda png: (png, {"Content-Type": "image/png"}))  # not a form
    refused("06.multipart", lambda png: (right(png)[0].decode("latin-1"), right(png)[1]))  # str


def test_07_everywhere_more_wrong_answers():
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:

        def one_engine(body):
            answer = offline.predict("mnist", body)
            return {"torchserve": (answer.status, answer.body)}

        def swapped(body):
            answer = offline.predict("mnist", body)
            return {e: (answer.body, answer.status) for e in ("torchserve", "litserve", "ray")}

        def always_ok(body):
            answer = offline.predict("mnist", samples.digit_png(2810))
            return {e: (200, answer.body) for e in ("torchserve", "litserve", "ray")}

        def status_text(body):
            answer = offline.predict("mnist", body)
            return {e: (str(answer.status), answer.body) for e in ("torchserve", "litserve", "ray")}

        for wrong in (one_engine, swapped, always_ok, status_text):
            refused("07.everywhere", wrong)


def test_07_litapi_more_wrong_answers():
    import litserve as ls
    from PIL import Image

    from handlerkit import UploadedDigitClassifier
    from handlerkit.digits import prepare_upload

    names = {"ls": ls, "Image": Image, "UploadedDigitClassifier": UploadedDigitClassifier}
    api = answer_of(
        "07", "07.litapi", "DigitAPI", base64=base64, io=io, prepare_upload=prepare_upload, **names
    )

    class DigitAsText(api):
        def encode_response(self, output):
            return {"digit": str(int(output.argmax()))}

    class TensorDigit(api):
        def encode_response(self, output):
            return {"digit": output.argmax()}

    class BareDigit(api):
        def encode_response(self, output):
            return int(output.argmax())

    class LeastLikely(api):
        def encode_response(self, output):
            return {"digit": int(output.argmin())}

    class NoPredict(ls.LitAPI):
        setup, decode_request, encode_response = api.setup, api.decode_request, api.encode_response

    for wrong in (DigitAsText, TensorDigit, BareDigit, LeastLikely):
        refused("07.litapi", wrong)
    assert "still needs predict" in str(refused("07.litapi", NoPredict))


def test_08_completeness_more_wrong_answers():
    right = answer_of("08", "08.completeness", "completeness")
    refused("08.completeness", lambda *a: tuple(reversed(right(*a))))  # swapped
    refused("08.completeness", lambda *a: right(*a)[0])  # one number
    refused("08.completeness", lambda *a: (right(*a)[0], right(*a)[0]))  # the sum twice

    def absolute(handler, context, data, target):  # |attributions| summed
        rows = [{"data": data, "target": target}]
        values = handler.handle(rows, context.for_requests([{"explain": "True"}]))[0]
        return float(torch.as_tensor(values).abs().sum()), right(handler, context, data, target)[1]

    refused("08.completeness", absolute)


def test_08_wrong_digit_more_wrong_answers():
    from handlerkit import UploadedDigitClassifier

    digits_handler, digit_context = UploadedDigitClassifier.for_folder(samples.MNIST_DIR)
    names = {"digits": digits_handler, "digit_context": digit_context}
    answer = answer_of("08", "08.wrong_digit", "wrong_digit", **names)
    swapped = {**answer, "for_answer": answer["for_label"], "for_label": answer["for_answer"]}
    refused("08.wrong_digit", swapped)
    refused("08.wrong_digit", {**answer, "index": answer["index"] + 1})  # off by one
    refused("08.wrong_digit", [answer["index"], answer["for_answer"], answer["for_label"]])
    half = torch.as_tensor(answer["for_answer"])[..., :14].tolist()  # the left half of the map
    refused("08.wrong_digit", {**answer, "for_answer": half})


def test_09_statuses_more_wrong_answers_and_properties():
    import random

    from handlerkit.exercises.checks import status_quiz

    right = answer_of("09", "09.statuses", "predicted")
    refused("09.statuses", {name: 415 for name in status_quiz()})
    refused("09.statuses", dict(zip(right, reversed(right.values()))))  # shifted by one
    refused("09.statuses", {**right, "coffee.gif": right["coffee.gif"] + 1})
    refused("09.statuses", list(right.values()))  # the statuses without their names
    shuffled = list(right.items())
    random.Random(0).shuffle(shuffled)
    passes("09.statuses", dict(shuffled))  # the order of the names does not matter


def test_03_capstone_more_wrong_answers():
    handler_py = answer_of("03", "03.capstone", "HANDLER_PY")
    assert "the text of your handler.py" in str(refused("03.capstone", handler_py.encode()))
    refused("03.capstone", "handler.py")  # the file's name, not its text
    as_text = handler_py.replace('{"digit": int(p.argmax())', '{"digit": str(int(p.argmax()))')
    assert as_text != handler_py
    assert "the digit is" in str(refused("03.capstone", as_text))
    off_by_one = handler_py.replace('{"digit": int(p.argmax())', '{"digit": int(p.argmax()) + 1')
    refused("03.capstone", off_by_one)
