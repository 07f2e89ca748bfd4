"""Checks for notebook 01 (DenseNet with the default ImageClassifier), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import io

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from ...course import samples
from .. import NotYet, Wrong, exercise


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
    from ...handlers.image_classifier import IMAGENET_MEAN, IMAGENET_STD

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
    from ... import ImageClassifier

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
    from ... import ImageClassifier, loading

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
