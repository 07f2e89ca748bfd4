"""initialize: device, eager vs TorchScript loading, mapping, load errors that name the fix."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from handlerkit import BaseHandler, Context, ImageClassifier, ModelLoadError
from handlerkit.loading import choose_device, load_mapping
from tests.fixtures.reference import ts_initialize

TINY_MODEL = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(3 * 16, 3)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))
"""


def _tiny_folder(tmp_path, model_source=TINY_MODEL, mapping=None):
    (tmp_path / "model.py").write_text(model_source)
    namespace = {}
    exec(TINY_MODEL, namespace)
    torch.manual_seed(0)
    torch.save(namespace["Tiny"]().state_dict(), tmp_path / "tiny.pth")
    if mapping is not None:
        (tmp_path / "index_to_name.json").write_text(json.dumps(mapping))
    return tmp_path


def _photo_rows():
    from handlerkit import samples

    return [{"data": samples.photo_bytes(n)} for n in ("chelsea", "coffee")]


def test_device_is_cpu_without_cuda_or_gpu_id():
    assert choose_device(None) == torch.device("cpu")
    expected = "cuda:1" if torch.cuda.is_available() else "cpu"
    assert str(choose_device(1)) == expected


def test_context_local_infers_the_manifest(tmp_path):
    context = Context.local(_tiny_folder(tmp_path), gpu_id=None, batch_size=4)
    assert context.manifest["model"] == {
        "modelName": tmp_path.name,
        "serializedFile": "tiny.pth",
        "modelFile": "model.py",
    }
    assert context.system_properties["batch_size"] == 4
    assert context.system_properties["model_dir"] == str(tmp_path.resolve())


def test_topk_never_exceeds_the_number_of_classes(tmp_path):
    folder = _tiny_folder(tmp_path, mapping={"0": "a", "1": ["n1", "b"], "2": "c"})
    handler, context = ImageClassifier.for_folder(folder)
    answers = handler.handle(_photo_rows(), context)
    assert [sorted(a) for a in answers] == [["a", "b", "c"]] * 2
    assert abs(sum(answers[0].values()) - 1) < 1e-6


def test_eager_model_matches_torchserve_on_a_three_class_model_with_topk_3(tmp_path):
    from ts.torch_handler.image_classifier import ImageClassifier as TsImageClassifier

    folder = _tiny_folder(tmp_path, mapping={"0": "a", "1": ["n1", "b"], "2": "c"})
    ts_handler, ts_ctx = ts_initialize(TsImageClassifier(), folder)
    ts_handler.topk = 3
    handler, context = ImageClassifier.for_folder(folder)
    assert handler.handle(_photo_rows(), context) == ts_handler.handle(_photo_rows(), ts_ctx)


def test_torchscript_model_loads_without_model_py(tmp_path):
    from ts.torch_handler.image_classifier import ImageClassifier as TsImageClassifier

    namespace = {}
    exec(TINY_MODEL, namespace)
    torch.manual_seed(1)
    torch.jit.save(
        torch.jit.trace(namespace["Tiny"]().eval(), torch.zeros(1, 3, 8, 8)), tmp_path / "tiny.pt"
    )
    context = Context.local(tmp_path)
    assert "modelFile" not in context.manifest["model"]
    handler = ImageClassifier()
    handler.initialize(context)
    assert isinstance(handler.model, torch.jit.ScriptModule)
    ts_handler, ts_ctx = ts_initialize(TsImageClassifier(), tmp_path)
    ts_handler.topk = 3
    handler.topk = 3
    assert handler.handle(_photo_rows(), context) == ts_handler.handle(_photo_rows(), ts_ctx)


def test_missing_model_py_names_the_fix(tmp_path):
    folder = _tiny_folder(tmp_path)
    (folder / "model.py").unlink()
    context = Context.local(folder, model_file="model.py")
    with pytest.raises(ModelLoadError, match="model.py.*does not exist.*put the nn.Module class"):
        ImageClassifier().initialize(context)


def test_two_classes_in_model_py_names_them(tmp_path):
    folder = _tiny_folder(tmp_path, TINY_MODEL + "\n\nclass Helper:\n    pass\n")
    with pytest.raises(
        ModelLoadError, match=r"defines 2 classes \(Helper, Tiny\).*keep the model class"
    ):
        ImageClassifier().initialize(Context.local(folder))


def test_classes_imported_into_model_py_do_not_count(tmp_path):
    folder = _tiny_folder(
        tmp_path,
        TINY_MODEL.replace(
            "from torch import nn", "from torch import nn\nfrom torch.nn import Linear"
        ),
    )
    handler = BaseHandler()
    handler.initialize(Context.local(folder))
    assert type(handler.model).__name__ == "Tiny"


def test_weights_that_do_not_fit_name_both_files(tmp_path):
    folder = _tiny_folder(tmp_path)
    torch.save(nn.Linear(2, 2).state_dict(), folder / "tiny.pth")
    with pytest.raises(
        ModelLoadError, match="weights in tiny.pth do not fit class Tiny in model.py"
    ):
        ImageClassifier().initialize(Context.local(folder))


def test_missing_weights_file_names_the_fix(tmp_path):
    folder = _tiny_folder(tmp_path)
    context = Context.local(folder, serialized_file="gone.pth")
    with pytest.raises(ModelLoadError, match="gone.pth.*does not exist.*fix serializedFile"):
        ImageClassifier().initialize(context)


def test_state_dict_without_model_py_is_not_torchscript(tmp_path):
    folder = _tiny_folder(tmp_path)
    (folder / "model.py").unlink()
    (folder / "tiny.pth").rename(folder / "tiny.pt")
    with pytest.raises(ModelLoadError, match="not TorchScript.*add model.py"):
        ImageClassifier().initialize(Context.local(folder))


def test_two_weights_files_are_ambiguous(tmp_path):
    folder = _tiny_folder(tmp_path)
    (folder / "other.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="2 weights files.*serialized_file"):
        Context.local(folder)


@pytest.mark.parametrize(
    "content, message",
    [
        ('["cat", "dog"]', "must be a JSON object"),
        ('{"0": 7}', "label of class '0' is 7"),
        ('{"0": "cat",', "not valid JSON"),
    ],
)
def test_bad_mapping_names_the_fix(tmp_path, content, message):
    path = tmp_path / "index_to_name.json"
    path.write_text(content)
    with pytest.raises(ModelLoadError, match=message):
        load_mapping(path)


def test_mapping_rules_match_torchserve(tmp_path):
    from ts.utils.util import load_label_mapping

    for content in ({"0": "cat", "1": ["n2", "dog"]}, {"object_type_names": ["a", "b"]}):
        path = tmp_path / "index_to_name.json"
        path.write_text(json.dumps(content))
        assert load_mapping(path) == load_label_mapping(str(path))
    assert load_mapping(tmp_path / "absent.json") is None


def test_handle_reports_handler_time(tmp_path):
    folder = _tiny_folder(tmp_path)
    handler, context = ImageClassifier.for_folder(folder)
    handler.handle(_photo_rows(), context)
    record = context.metrics.last("HandlerTime")
    assert record.unit == "ms" and record.value > 0


def test_base_handler_round_trips_lists(tmp_path):
    folder = _tiny_folder(tmp_path)
    handler, context = BaseHandler(), Context.local(folder)
    handler.initialize(context)
    out = handler.handle(torch.zeros(2, 3, 8, 8).tolist(), context)
    assert len(out) == 2 and len(out[0]) == 3


def test_whole_pickled_model_names_the_fix(tmp_path):
    folder = _tiny_folder(tmp_path)
    namespace = {}
    exec(TINY_MODEL, namespace)
    torch.save(nn.Sequential(nn.Linear(2, 2)), folder / "tiny.pth")
    with pytest.raises(ModelLoadError, match="not a plain state_dict.*model.state_dict"):
        ImageClassifier().initialize(Context.local(folder))


def test_layer_hooks_on_torchscript_name_the_problem(tmp_path):
    import handlerkit

    namespace = {}
    exec(TINY_MODEL, namespace)
    torch.jit.save(
        torch.jit.trace(namespace["Tiny"]().eval(), torch.zeros(1, 3, 8, 8)), tmp_path / "tiny.pt"
    )
    handler = ImageClassifier()
    handler.initialize(Context.local(tmp_path))
    with pytest.raises(TypeError, match="the model is TorchScript"):
        with handlerkit.trace(handler, layers=["fc"]):
            pass
    assert not handler.hooks


def test_response_statuses_are_per_batch(tmp_path):
    folder = _tiny_folder(tmp_path)
    handler, context = ImageClassifier.for_folder(folder)
    handler.handle([{"data": b"junk"}], context)
    assert context.response_status[0][0] == 400
    handler.handle(_photo_rows(), context)
    assert context.response_status == {}
