"""Where TorchServe crashes or misleads, handlerkit answers: odd colour modes and bad rows."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from handlerkit import Context, ImageClassifier, TensorImageClassifier, TooManyPixels, samples
from handlerkit.images import DEFAULT_MAX_PIXELS
from tests.fixtures.reference import ts_context


def _converted(mode: str) -> bytes:
    image = samples.photo("chelsea")
    if mode == "RGBA":
        image = image.convert("RGBA")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = image.convert(mode)
    return samples.encode(image, "JPEG" if mode == "CMYK" else "PNG")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA"])
def test_non_rgb_photo_is_classified_as_its_rgb_conversion(densenet, mode):
    handler, context = densenet
    data = _converted(mode)
    assert Image.open(io.BytesIO(data)).mode == mode
    rgb = samples.encode(Image.open(io.BytesIO(data)).convert("RGB"), "PNG")
    ours = handler.handle([{"data": data}], context)
    assert ours == handler.handle([{"data": rgb}], context)
    assert "error" not in ours[0]


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK"])
def test_torchserve_crashes_on_non_rgb_photos(ts_densenet, mode):
    ts_handler, ts_ctx = ts_densenet
    with pytest.raises(RuntimeError):
        ts_handler.handle([{"data": _converted(mode)}], ts_ctx)


def _png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A complete, valid 1-bit PNG of width x height black pixels (compresses to ~100 KB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _png_bomb()


def _truncated() -> bytes:
    data = samples.photo_bytes("coffee")
    return data[: len(data) // 2]


def check_bad_rows_are_answered_alone(handler, context, good: dict, bomb: bytes) -> None:
    """Six bad rows between two good ones: each gets its own error and status, the good answered."""
    rows = [
        good,
        {"data": b""},
        {"data": b"not an image at all"},
        {"data": _truncated()},
        {"data": bomb},
        {"body": None},
        good,
    ]
    answers = handler.handle(rows, context.for_requests([{}] * len(rows)))
    statuses = {i: code for i, (code, _) in context.response_status.items()}
    assert statuses == {1: 400, 2: 400, 3: 400, 4: 413, 5: 400}
    # the bad rows leave the batch: the good ones are answered as a batch of two
    assert [answers[0], answers[-1]] == handler.handle([good, good], context)
    assert "empty request" in answers[1]["error"]
    assert "not an image" in answers[2]["error"]
    assert "broken JPEG" in answers[3]["error"]
    assert "over the limit" in answers[4]["error"]
    assert "empty request" in answers[5]["error"]


def test_bad_rows_get_their_own_error_and_the_rest_are_answered(densenet, photo_rows, bomb):
    check_bad_rows_are_answered_alone(*densenet, photo_rows[0], bomb)


def test_bad_row_status_reaches_a_torchserve_context(densenet_dir, photo_rows):
    context = ts_context(densenet_dir)
    handler = ImageClassifier()
    handler.initialize(context)
    answers = handler.handle([photo_rows[0], {"data": b"junk"}], context)
    assert "error" in answers[1] and "error" not in answers[0]
    assert context.get_response_status(1)[0] == 400
    assert context.get_response_status(0)[0] == 200


def test_torchserve_fails_the_whole_batch_on_one_bad_row(ts_densenet, photo_rows):
    ts_handler, ts_ctx = ts_densenet
    from PIL import UnidentifiedImageError

    with pytest.raises(UnidentifiedImageError):  # the good row's answer is lost with it
        ts_handler.handle([photo_rows[0], {"data": b"junk"}], ts_ctx)


def test_pixel_bomb_is_refused_fast_without_decoding(densenet, bomb):
    handler, context = densenet
    started = time.perf_counter()
    answers = handler.handle([{"data": bomb}], context)
    elapsed = time.perf_counter() - started
    assert "over the limit" in answers[0]["error"]
    assert elapsed < 0.5, f"refusing the bomb took {elapsed:.2f}s"


def test_pixel_limit_stays_on_when_the_context_lacks_the_property(densenet_dir, bomb):
    from ts.torch_handler.unit_tests.test_utils.mock_context import MockContext

    local = Context.local(densenet_dir)
    model = local.manifest["model"]
    context = MockContext(model["serializedFile"], str(densenet_dir), model["modelFile"])
    assert "limit_max_image_pixels" not in context.system_properties
    handler = ImageClassifier()
    handler.initialize(context)
    assert handler.max_image_pixels == DEFAULT_MAX_PIXELS
    assert "over the limit" in handler.handle([{"data": bomb}], context)[0]["error"]


def test_pixel_limit_can_be_switched_off_or_set(densenet_dir):
    off = ImageClassifier()
    off.initialize(Context.local(densenet_dir, limit_max_image_pixels=False))
    assert off.max_image_pixels is None
    small = ImageClassifier()
    context = Context.local(densenet_dir, limit_max_image_pixels=10_000)
    small.initialize(context)
    answer = small.handle([{"data": samples.photo_bytes("chelsea")}], context)[0]
    assert "451x300 = 135,300 pixels, over the limit of 10,000" in answer["error"]


def test_all_rows_bad_skips_inference(densenet):
    handler, context = densenet
    assert handler.handle([{"data": b"x"}, {"data": b""}], context) == [
        {"error": "not an image: Pillow cannot identify 1 bytes starting b'x'"},
        {"error": "empty request: no bytes under 'data' or 'body'"},
    ]


def test_invalid_base64_and_odd_payloads(densenet, photo_rows):
    handler, context = densenet
    answers = handler.handle(
        [{"data": "%%% not base64"}, {"data": {"a": 1}}, "row", photo_rows[1]], context
    )
    assert "not valid base64" in answers[0]["error"]
    assert "unsupported payload type dict" in answers[1]["error"]
    assert "must be a dict" in answers[2]["error"]
    assert "error" not in answers[3]


def test_list_row_of_the_wrong_shape_is_rejected_alone(densenet, photo_rows):
    handler, context = densenet
    rows = photo_rows[:2] + [{"data": [[0.0, 1.0], [2.0, 3.0]]}, {"data": [[1, 2], [3]]}]
    answers = handler.handle(rows, context)
    assert "error" not in answers[0] and "error" not in answers[1]
    assert "shape (2, 2)" in answers[2]["error"]
    assert "rectangular" in answers[3]["error"]


@pytest.mark.parametrize("handler_class", [ImageClassifier, TensorImageClassifier])
def test_pixel_limit_is_on_before_initialize_on_both_paths(handler_class):
    # one rule for both preprocessing paths: the limit is on until a context switches it off
    over_the_limit = _png_bomb(10_000, 10_000)  # 100 M pixels: over the limit, under Pillow's 2x
    with pytest.raises(TooManyPixels):
        handler_class().decode(over_the_limit)
