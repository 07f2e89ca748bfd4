"""The budgets for uploads of at most 1 MB (issue 15), each hostile case in a fresh process.

Upload handler: at most 2.5 s and 400 MB of extra peak memory; ImageClassifier (and its tensor
path, TensorImageClassifier): 5 s and 700 MB.
Time is checked as CPU time, which a busy test machine inflates less than wall time; the
benchmark `bench/uploads_budget.py` prints both for every case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import uploads_budget  # noqa: E402

WORST = {  # the costliest cases of the benchmark for each handler (keeps the test short)
    "uploads": ["jpeg_9000x9000", "png_rgba_9000x9000", "tiff_float_9000x9000"],
    "image": ["png_100000x1", "png_rgba_9000x9000", "tiff_float_9000x9000"],
    "tensor": ["png_16bit_9000x9000", "bmp_rle8_9000x9000", "tiff_float_9000x9000"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    names = sorted({name for cases in WORST.values() for name in cases})
    return uploads_budget.write_cases(tmp_path_factory.mktemp("hostile"), names)


@pytest.mark.parametrize(
    "handler, case", [(handler, case) for handler, cases in WORST.items() for case in cases]
)
def test_a_hostile_upload_stays_within_the_budget(files, handler, case):
    result = uploads_budget.run_case(handler, files[case])
    assert uploads_budget.within_budget(handler, result, clock="cpu_seconds"), result
