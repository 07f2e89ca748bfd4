"""The budgets for uploads of at most 1 MB (issue 15), each hostile case in a fresh process.

Upload handler: at most 2.5 s and 400 MB of extra peak memory; ImageClassifier (and its tensor
path, TensorImageClassifier): 5 s and 700 MB.
Time is checked as CPU time, which a busy test machine inflates less than wall time; the
benchmark `python -m bench.uploads_budget` prints both for every case. The cases, and the fresh
process that measures one, are in tests/fixtures/upload_budget.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import upload_budget

WORST = {  # the costliest cases of the benchmark for each handler (keeps the test short)
    "uploads": ["jpeg_9000x9000", "png_rgba_9000x9000", "tiff_float_9000x9000"],
    "image": ["png_100000x1", "png_rgba_9000x9000", "tiff_float_9000x9000"],
    "tensor": ["png_16bit_9000x9000", "bmp_rle8_9000x9000", "tiff_float_9000x9000"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    names = sorted({name for cases in WORST.values() for name in cases})
    return upload_budget.write_cases(tmp_path_factory.mktemp("hostile"), names)


@pytest.mark.parametrize(
    "handler, case", [(handler, case) for handler, cases in WORST.items() for case in cases]
)
def test_a_hostile_upload_stays_within_the_budget(files, handler, case):
    result = upload_budget.run_case(handler, files[case])
    assert upload_budget.within_budget(handler, result, clock="cpu_seconds"), result
