"""Hostile and awkward uploads of at most 1 MB: time and extra peak memory, one fresh process each.

Budgets (issue 15): at most 2.5 s and 400 MB in the upload handler, 5 s and 700 MB in
ImageClassifier. Time is printed as wall and CPU seconds; the budget column judges CPU time,
which a busy shared machine inflates less.
Run: .venv/bin/python bench/uploads_budget.py [--handlers uploads image tensor] [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGETS = {"uploads": (2.5, 400), "image": (5.0, 700), "tensor": (5.0, 700)}  # seconds, MB
HANDLERS = {
    "uploads": "UploadedDigitClassifier",
    "image": "ImageClassifier",
    "tensor": "TensorImageClassifier",
}
MAX_UPLOAD = 1_000_000


# ---- the uploads --------------------------------------------------------------------------------
def png(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    """A valid all-zero PNG (handlerkit.samples.zeros_png, which notebook 09 uses too)."""
    from handlerkit import samples

    return samples.zeros_png(width, height, depth, colour)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A 16x16 JPEG whose header says width x height (handlerkit.samples.jpeg_declaring)."""
    from handlerkit import samples

    return samples.jpeg_declaring(width, height)


def bmp_rle8(width: int, height: int) -> bytes:
    """A run-length-encoded 8-bit BMP of one colour (about 74 bytes a row at 9000 wide)."""
    runs = [255] * (width // 255) + ([width % 255] if width % 255 else [])
    row = b"".join(bytes((n, 1)) for n in runs) + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    palette = b"\x00\x00\x00\x00" + b"\xc8\xc8\xc8\x00" + b"\x00" * 4 * 254
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + palette + pixels


def tiff_float(width: int, height: int) -> bytes:
    """A deflate-compressed 32-bit float TIFF of zeros."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("F", (width, height), 0.0).save(buffer, "TIFF", compression="tiff_adobe_deflate")
    return buffer.getvalue()


def phone_photo(orientation: int = 6) -> bytes:
    """A 4032x3024 JPEG stored sideways with EXIF orientation, as a phone camera writes it."""
    from PIL import Image

    from handlerkit import samples

    image = samples.photo("astronaut").resize((4032, 3024), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=70, exif=exif)
    return buffer.getvalue()


def ordinary_photo() -> bytes:
    from handlerkit import samples

    return samples.photo_bytes("grace_hopper")


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n0 0 moveto 64 64 lineto stroke\n"


CASES = {  # name -> (what it is, how to make it)
    "photo_jpeg": ("an ordinary photo (control)", ordinary_photo),
    "phone_jpeg_4032x3024": ("phone photo, EXIF-rotated", phone_photo),
    "png_4000x1": ("4000x1 PNG strip", lambda: png(4000, 1)),
    "png_100000x1": ("100000x1 PNG strip", lambda: png(100_000, 1)),
    "png_1x100000": ("1x100000 PNG strip", lambda: png(1, 100_000)),
    "jpeg_9000x9000": ("tiny JPEG declaring 9000x9000", lambda: jpeg_declaring(9000, 9000)),
    "png_rgb_9000x9000": ("valid RGB PNG, 81 MP", lambda: png(9000, 9000, colour=2)),
    "png_rgba_9000x9000": ("valid RGBA PNG, 81 MP", lambda: png(9000, 9000, colour=6)),
    "png_16bit_9000x9000": ("valid 16-bit grey PNG, 81 MP", lambda: png(9000, 9000, depth=16)),
    "bmp_rle8_9000x9000": ("RLE BMP, 81 MP", lambda: bmp_rle8(9000, 9000)),
    "tiff_float_9000x9000": ("deflate float TIFF, 81 MP", lambda: tiff_float(9000, 9000)),
    "png_30000x30000": ("PNG bomb over the pixel limit", lambda: png(30_000, 30_000, depth=1)),
    "eps": ("EPS (Ghostscript format)", eps),
}


# ---- one measurement, in a fresh process -------------------------------------------------------
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) for this process; False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build(handler: str):
    """(handler, context, warm-up row) for `handler` in BUDGETS."""
    import torch

    from handlerkit import ImageClassifier, UploadedDigitClassifier, samples
    from handlerkit.handlers.tensor_classifier import TensorImageClassifier

    torch.set_num_threads(2)
    if handler == "uploads":
        h, ctx = UploadedDigitClassifier.for_folder(samples.MNIST_DIR)
        return h, ctx, {"data": samples.digit_png(0)}
    cls = ImageClassifier if handler == "image" else TensorImageClassifier
    h, ctx = cls.for_folder(samples.efficientnet_folder())
    return h, ctx, {"data": samples.photo_bytes("chelsea")}


def measure(handler: str, path: str) -> dict:
    """Handle the upload in `path` once, after a warm-up: seconds, extra peak MB, answer."""
    h, ctx, warm = build(handler)
    h.handle([warm], ctx.for_requests([{}]))
    data = Path(path).read_bytes()
    before = _status_kb("VmRSS")
    exact = _reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    answer = h.handle([{"data": data}], ctx.for_requests([{}]))[0]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if exact:
        peak = _status_kb("VmHWM")
    else:  # ru_maxrss is the whole life's peak: an upper bound on this request's
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = ctx.get_response_status(0)[0]
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "extra_mb": round(max(0, peak - before) / 1024, 1),
        "status": status,
        "answer": _summary(answer),
    }


def _summary(answer) -> str:
    if isinstance(answer, dict) and "error" in answer:
        return "error: " + answer["error"]
    if isinstance(answer, dict) and "digit" in answer:
        return f"digit {answer['digit']}"
    if isinstance(answer, dict):
        return "top-1 " + next(iter(answer))
    return repr(answer)[:60]


def run_case(handler: str, path: Path, timeout: float = 120) -> dict:
    """`measure` in a fresh Python process; a process killed for memory is reported as such."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")  # freed big blocks leave RSS
    command = [sys.executable, __file__, "--child", handler, str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "extra_mb": None, "status": None, "answer": "timed out"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"seconds": None, "extra_mb": None, "status": None, "answer": f"died: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_cases(folder: Path, names: list[str]) -> dict[str, Path]:
    """Make each upload once, into `folder`; every one must be at most 1 MB."""
    paths = {}
    for name in names:
        data = CASES[name][1]()
        assert len(data) <= MAX_UPLOAD, f"{name} is {len(data):,} bytes, over 1 MB"
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def within_budget(handler: str, result: dict, clock: str = "seconds") -> bool:
    """Time (`clock`: wall "seconds", or "cpu_seconds", which a busy machine inflates less)
    and extra peak memory within the handler's budget."""
    seconds, megabytes = BUDGETS[handler]
    spent, extra = result.get(clock), result.get("extra_mb")
    return spent is not None and extra is not None and spent <= seconds and extra <= megabytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handlers", nargs="+", default=["uploads", "image"], choices=BUDGETS)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--child", nargs=2, metavar=("HANDLER", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        paths = write_cases(Path(folder), args.cases)
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        print(
            "| upload | bytes | handler | s | CPU s | + peak MB | status | within budget | answer |"
        )
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |")
        for name in args.cases:
            for handler in args.handlers:
                r = run_case(handler, paths[name])
                ok = "yes" if within_budget(handler, r, clock="cpu_seconds") else "**no**"
                answer = r["answer"] if len(r["answer"]) <= 70 else r["answer"][:67] + "..."
                print(
                    f"| {name} | {sizes[name]:,} | {HANDLERS[handler]} | {r['seconds']} | "
                    f"{r.get('cpu_seconds')} | {r['extra_mb']} | {r['status']} | {ok} | {answer} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
