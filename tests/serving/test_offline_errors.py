"""OfflineServer names the stage a handler failed in, and `check` names load-time problems."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from handlerkit import samples
from handlerkit.__main__ import main
from handlerkit.offline import OfflineServer
from handlerkit.serving.check import check

HANDLERS = Path(__file__).parents[1] / "fixtures" / "handlers"


def first_digit_labelled(label: int) -> bytes:
    index = next(i for i in range(5000) if samples.digit_label(i) == label)
    return samples.digit_png(index)


@pytest.fixture(scope="module")
def server():
    handlers = {
        "buggy": HANDLERS / "buggy_handler.py",
        "ts": HANDLERS / "ts_mnist_handler.py",
        "quirks": HANDLERS / "quirks.py",
    }
    models = {name: samples.MNIST_DIR for name in handlers}
    with OfflineServer(models, handler={k: str(v) for k, v in handlers.items()}) as server:
        yield server


def test_a_bug_in_postprocess_is_named_with_its_traceback(server):
    answer = server.predict("buggy", first_digit_labelled(9))
    assert answer.status == 503 and answer.json()["message"] == "Prediction failed"
    assert answer.error.stage == "postprocess"
    assert answer.error.message == "IndexError: list index out of range"
    assert "buggy_handler.py" in answer.error.traceback and "LABELS[i]" in answer.error.traceback


def test_a_row_the_handler_can_read_has_no_error(server):
    answer = server.predict("buggy", first_digit_labelled(1))
    assert (answer.status, answer.body, answer.error) == (200, b"one", None)


def test_a_failure_in_preprocess_is_named(server):
    answer = server.predict("ts", b"\x00\x01 not an image")
    assert answer.status == 503
    assert answer.error.stage == "preprocess"
    assert "UnidentifiedImageError" in answer.error.message


def test_a_function_entry_point_that_raises_is_named(server):
    answer = server.predict("quirks", b"raise")
    assert answer.error.stage == "handle"
    assert "the handler raised on purpose" in answer.error.message


def test_statuses_the_handler_chose_are_not_errors(server):
    answer = server.predict("quirks", b"status")
    assert (answer.status, answer.error) == (418, None)


def test_a_wrong_length_answer_is_a_503_naming_the_mismatch(server):
    answer = server.predict("quirks", b"mismatch")
    assert answer.status == 503
    assert answer.json()["message"] == "number of batch response mismatched"
    assert answer.error.stage == "handle"


def test_a_model_that_does_not_load_answers_503_with_the_load_error(tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(samples.MNIST_DIR, folder)
    (folder / "handler.py").write_text("x = 1\n")  # no class, no handle()
    with OfflineServer({"broken": folder}) as server:
        answer = server.predict("broken", samples.digit_png(0))
        assert answer.status == 503
        assert answer.json()["type"] == "ServiceUnavailableException"
        assert answer.error.stage == "initialize"
        assert "Expected only one class" in answer.error.message
        assert server.load_error("broken") is answer.error


def test_a_missing_module_is_named_in_the_first_answer(tmp_path):
    folder = tmp_path / "needs"
    shutil.copytree(samples.MNIST_DIR, folder)
    (folder / "handler.py").write_text("import not_installed_anywhere\n\n\nclass H:\n    pass\n")
    with OfflineServer({"needs": folder}) as server:
        answer = server.predict("needs", samples.digit_png(0))
    assert answer.status == 503
    assert answer.error.stage == "initialize"
    assert answer.error.missing == "not_installed_anywhere"
    message = answer.json()["message"]
    assert message.startswith('Model "needs" has no worker to serve inference request.')
    assert message.endswith(
        "The model did not load: ModuleNotFoundError: No module named 'not_installed_anywhere': "
        "install the package that provides 'not_installed_anywhere'"
    )


def test_without_ts_the_first_answer_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ts", None)  # `import ts` fails as where it is not installed
    with OfflineServer({"mnist": samples.MNIST_DIR}) as server:
        answer = server.predict("mnist", samples.digit_png(0))
    assert answer.status == 503
    fix = 'pip install "handlerkit[notebooks]" (for torchserve)'
    assert str(answer.error).startswith("initialize failed: ModuleNotFoundError")
    assert str(answer.error).endswith(fix)
    assert answer.json()["message"].endswith(fix)


def test_two_models_with_the_same_file_names_each_see_their_own(tmp_path):
    # Both folders have handler.py and model.py: each model imports its own, as in TorchServe,
    # where every model has its own worker process.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(samples.MNIST_DIR / "mnist_cnn.pt", other)
    shutil.copy(samples.MNIST_DIR / "model.py", other)
    (other / "handler.py").write_text(
        "def handle(data, context):\n    return ['other'] * len(data or [])\n"
    )
    with OfflineServer({"mnist": samples.MNIST_DIR, "other": other}) as server:
        assert server.predict("other", b"x").body == b"other"
        assert server.predict("mnist", samples.digit_png(0)).json()["digit"] == 0
        assert server.predict("other", b"x").body == b"other"


# ---- check --------------------------------------------------------------------------------------
def broken_copy(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(samples.MNIST_DIR, folder)
    for name, text in files.items():
        (folder / name.replace("_py", ".py")).write_text(text)
    return folder


def messages(folder: Path, handler: str | None = None) -> str:
    problems, worker = check(folder, handler=handler)
    if worker is not None:
        worker.close()
    return "\n".join(str(p) for p in problems)


def test_check_passes_a_good_model():
    problems, worker = check(samples.MNIST_DIR)
    worker.close()
    assert problems == []


def test_check_names_two_classes_in_model_py(tmp_path):
    model = (samples.MNIST_DIR / "model.py").read_text() + "\n\nclass Helper:\n    pass\n"
    text = messages(broken_copy(tmp_path, model_py=model))
    assert "model.py defines 2 classes (Net, Helper)" in text
    assert "keep the nn.Module class" in text


def test_check_names_a_handler_file_with_no_class(tmp_path):
    text = messages(broken_copy(tmp_path, handler_py="x = 1\n"))
    assert "handler.py defines no class and no handle(data, context) function" in text


def test_check_names_the_import_a_handler_file_fails_on(tmp_path):
    handler = "import package_that_is_not_installed\n\nclass H:\n    def handle(self, d, c): ...\n"
    text = messages(broken_copy(tmp_path, handler_py=handler))
    assert "No module named 'package_that_is_not_installed'" in text
    assert "looked for a builtin of that name" in text


def test_check_names_weights_that_do_not_fit_the_model(tmp_path):
    import torch

    folder = broken_copy(tmp_path)
    torch.save({"conv1.weight": torch.zeros(1)}, folder / "mnist_cnn.pt")
    text = messages(folder, handler=str(HANDLERS / "ts_mnist_handler.py"))
    assert "the weights do not fit the model class" in text


def test_check_warns_when_a_classifier_has_no_labels(tmp_path):
    folder = broken_copy(tmp_path)
    text = messages(folder, handler="image_classifier")
    assert "no index_to_name.json" in text and text.startswith("warning")


def test_check_and_run_from_the_command_line(tmp_path, capsys):
    assert main(["check", str(samples.MNIST_DIR)]) == 0
    assert "loads as TorchServe would" in capsys.readouterr().out
    bad = broken_copy(tmp_path, handler_py="x = 1\n")
    assert main(["check", str(bad)]) == 1
    png = tmp_path / "digit.png"
    png.write_bytes(samples.digit_png(0))
    assert main(["run", str(samples.MNIST_DIR), str(png)]) == 0
    out = capsys.readouterr().out
    assert "HTTP 200" in out and '"digit": 0' in out and "inference" in out
    handler = str(HANDLERS / "buggy_handler.py")
    nine = tmp_path / "nine.png"
    nine.write_bytes(first_digit_labelled(9))
    assert main(["run", str(samples.MNIST_DIR), str(nine), "--handler", handler]) == 1
    out = capsys.readouterr().out
    assert "HTTP 503" in out and "the handler failed in postprocess" in out
    assert "IndexError" in out and "StageRecord(stage inference" in out


def test_an_image_sent_as_a_url_encoded_form_gets_a_400_that_says_so():
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with OfflineServer({"mnist": samples.MNIST_DIR}) as server:
        answer = server.predict("mnist", samples.digit_png(0), form)
    assert answer.status == 400
    message = answer.json()["error"]
    assert "only form fields" in message and "application/octet-stream" in message
