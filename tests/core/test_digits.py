"""Tests for handlerkit.digits: each upload step's contract, then accuracy on generated uploads.
The steps sit between decoding an upload and Net; uploads.py makes the test images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from handlerkit import digits as D
from handlerkit import samples
from handlerkit.course import train as T
from tests.fixtures.uploads import printed_digits_by_font, redrawn_heldout


def ink_on_paper(size=(120, 90), box=(30, 20, 60, 70), paper=230, ink=20, mode="L") -> Image.Image:
    """A light page with one dark filled rectangle (an easy-to-measure 'digit')."""
    image = Image.new("L", size, paper)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image.convert(mode)


def center(image: Image.Image) -> tuple[float, float]:
    return D.center_of_mass(np.asarray(image, dtype=np.float64))


# --- each step's contract -------------------------------------------------------------------


def test_steps_are_named_and_ordered():
    names = [name for name, _ in D.UPLOAD_STEPS]
    assert names == ["flatten_alpha", "grayscale", "invert_if_light", "crop_to_ink",
                     "fit_20x20", "center_by_mass", "to_tensor", "normalize"]  # fmt: skip


def test_flatten_alpha_lays_transparency_on_white():
    rgba = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # transparent black, which must not stay black
    ImageDraw.Draw(rgba).rectangle((10, 10, 20, 20), fill=(10, 20, 90, 255))
    flat = D.flatten_alpha(rgba)
    assert flat.mode == "RGB" and flat.size == (40, 30)
    assert flat.getpixel((0, 0)) == (255, 255, 255)
    assert flat.getpixel((15, 15)) == (10, 20, 90)


def test_flatten_alpha_handles_palette_transparency_and_leaves_opaque_images_alone():
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0])
    palette.info["transparency"] = 0
    assert D.flatten_alpha(palette).convert("L").getpixel((5, 5)) == 255
    gray = ink_on_paper()
    assert D.flatten_alpha(gray).mode == "L"
    assert np.array_equal(np.asarray(D.flatten_alpha(gray)), np.asarray(gray))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "LA", "1"])
def test_grayscale_gives_one_8_bit_channel(mode):
    image = D.grayscale(D.flatten_alpha(ink_on_paper(mode=mode)))
    assert image.mode == "L" and image.size == (120, 90)


def test_invert_if_light_inverts_light_paper_only():
    light = ink_on_paper(paper=230, ink=20)
    inverted = np.asarray(D.invert_if_light(light))
    assert inverted[0, 0] == 25 and inverted[45, 45] == 235  # paper dark, ink light
    dark = ink_on_paper(paper=10, ink=240)  # chalk on a blackboard, or MNIST itself
    assert np.array_equal(np.asarray(D.invert_if_light(dark)), np.asarray(dark))


def test_invert_if_light_decides_by_the_border_not_the_majority():
    bold = ink_on_paper(size=(60, 60), box=(3, 3, 56, 56), paper=240, ink=0)  # mostly ink
    assert np.asarray(D.invert_if_light(bold))[30, 30] == 255


def test_crop_to_ink_crops_and_stretches_through_noise():
    rng = np.random.default_rng(0)
    page = np.asarray(ink_on_paper(paper=210, ink=40), dtype=np.float64)
    noisy = Image.fromarray(np.clip(page + rng.normal(0, 6, page.shape), 0, 255).astype(np.uint8))
    jpeg = io.BytesIO()
    noisy.save(jpeg, "JPEG", quality=75)
    prepared = D.invert_if_light(D.grayscale(Image.open(jpeg)))
    cropped = np.asarray(D.crop_to_ink(prepared))
    assert abs(cropped.shape[1] - 31) <= 2 and abs(cropped.shape[0] - 51) <= 2  # the rectangle
    assert cropped.max() == 255 and np.median(cropped) >= 240


def test_crop_to_ink_zeroes_the_paper_level():
    cropped = np.asarray(D.crop_to_ink(D.invert_if_light(ink_on_paper(box=(10, 10, 80, 60)))))
    assert cropped[0, 0] == 255
    frame = D.crop_to_ink(D.invert_if_light(ink_on_paper(size=(200, 200), box=(50, 50, 60, 150))))
    field = np.asarray(D.center_by_mass(D.fit_20x20(frame)))
    assert field[0, 0] == 0


@pytest.mark.parametrize(
    "blank",
    [
        Image.new("L", (64, 64), 255),
        Image.new("L", (64, 64), 0),
        Image.new("RGB", (300, 200), (231, 229, 220)),
        Image.new("RGBA", (50, 80), (0, 0, 0, 0)),
    ],
)
def test_blank_images_raise_a_clear_error(blank):
    with pytest.raises(ValueError, match="^no ink found: the image is blank$"):
        D.prepare_upload(blank)


def test_noisy_blank_paper_is_still_blank():
    rng = np.random.default_rng(1)
    paper = np.clip(rng.normal(225, 5, (240, 320)), 0, 255).astype(np.uint8)
    with pytest.raises(ValueError, match="no ink found"):
        D.prepare_upload(Image.fromarray(paper))


@pytest.mark.parametrize(
    "size,expected", [((100, 50), (20, 10)), ((7, 14), (10, 20)), ((3, 300), (1, 20))]
)
def test_fit_20x20_keeps_the_aspect_ratio(size, expected):
    assert D.fit_20x20(Image.new("L", size, 255)).size == expected


def test_fit_20x20_keeps_a_thin_pen_at_full_strength():
    page = Image.new("L", (300, 300), 0)
    ImageDraw.Draw(page).line((150, 20, 160, 280), fill=255, width=3)  # 1% of the digit's height
    small = np.asarray(D.fit_20x20(D.crop_to_ink(page)))
    assert small.max() == 255  # a plain resize would leave it about a fifth as bright


@pytest.mark.parametrize("box", [(0, 0, 19, 19), (0, 0, 4, 19), (0, 12, 19, 19), (2, 3, 9, 7)])
def test_center_by_mass_puts_the_centre_of_mass_within_a_pixel(box):
    glyph = Image.new("L", (20, 20), 0)
    ImageDraw.Draw(glyph).rectangle(box, fill=255)
    ImageDraw.Draw(glyph).line((0, 19, 19, 0), fill=128, width=2)  # make it lopsided
    field = D.center_by_mass(glyph)
    assert field.size == (28, 28) and field.mode == "L"
    row, col = center(field)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1


def test_to_tensor_and_normalize_match_torchvision():
    field = Image.fromarray(np.arange(784, dtype=np.uint8).reshape(28, 28))
    tensor = D.to_tensor(field)
    assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.float32
    assert 0 <= tensor.min() and tensor.max() <= 1
    normalized = D.normalize(tensor)
    torch.testing.assert_close(normalized, (tensor - 0.1307) / 0.3081)


def test_prepare_upload_applies_the_steps_in_order():
    image = ink_on_paper(mode="RGB")
    out = image
    for _, step in D.UPLOAD_STEPS:
        out = step(out)
    result = D.prepare_upload(image)
    assert result.shape == (1, 28, 28) and result.dtype == torch.float32
    torch.testing.assert_close(result, out)
    assert result.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-4)  # MNIST's black


def test_prepare_upload_leaves_an_mnist_digit_nearly_as_it_was():
    _, _, X_held, _ = T.heldout_split()
    for digit in X_held[::100]:
        prepared = D.prepare_upload(Image.fromarray(digit)) * 0.3081 + 0.1307
        original = torch.from_numpy(digit).float() / 255
        assert (prepared[0] - original).abs().mean() < 0.08


# --- accuracy with the shipped model --------------------------------------------------------


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    model = T.load_net_class()()
    state = torch.load(samples.MNIST_DIR / "mnist_cnn.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.no_grad()
def predict(net: torch.nn.Module, uploads: list[tuple[bytes, int]]) -> np.ndarray:
    """Decode each upload, prepare it and classify the batch; returns the predicted digits."""
    batch = torch.stack([D.prepare_upload(Image.open(io.BytesIO(data))) for data, _ in uploads])
    return net(batch).argmax(1).numpy()


def test_redrawn_heldout_uploads_are_recognised(net):
    uploads = redrawn_heldout(n=300, seed=0)
    labels = np.array([label for _, label in uploads])
    acc = (predict(net, uploads) == labels).mean()
    print(f"\nre-drawn held-out uploads: {acc:.1%} of {len(uploads)}")
    assert acc >= 0.95


def test_printed_digits_are_recognised(net):
    hits = total = 0
    print()
    for font, uploads in printed_digits_by_font(seed=0).items():
        labels = np.array([label for _, label in uploads])
        predicted = predict(net, uploads)
        hits, total = hits + (predicted == labels).sum(), total + len(labels)
        wrong = sorted({f"{y}->{p}" for y, p in zip(labels, predicted, strict=True) if y != p})
        print(f"  {font:<28} {(predicted == labels).mean():6.1%}  wrong: {' '.join(wrong)}")
    print(f"printed DejaVu digits: {hits / total:.1%} of {total}")
    assert hits / total >= 0.80
