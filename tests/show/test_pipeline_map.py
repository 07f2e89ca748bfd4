"""The pipeline map: drawn from the code, it names every stage and step a real trace records."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402

import handlerkit  # noqa: E402
from handlerkit.show import pipeline_map  # noqa: E402

DOCS_MAP = Path(__file__).resolve().parents[2] / "docs" / "pipeline_map.png"


def _texts(fig) -> str:
    return "\n".join(text.get_text() for ax in fig.axes for text in ax.texts)


def test_the_map_names_every_stage_and_batch_step_a_trace_records(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:1], context)
    fig = pipeline_map.draw_pipeline_map()
    texts = _texts(fig)
    recorded = {r.stage for r in t if r.kind == "stage"} | {
        r.stage for r in t if r.kind == "step" and r.row is None
    }
    assert recorded >= {"preprocess", "inference", "postprocess", "stack", "to_device"}
    for name in recorded | {"decode", "convert", "explain_handle", "image_processing"}:
        assert name in texts, name
    for hook in ("stage hook", "step hook", "layer hook"):
        assert hook in texts
    plt.close(fig)


def test_each_class_box_lists_the_methods_that_class_defines():
    fig = pipeline_map.draw_pipeline_map()
    texts = _texts(fig)
    for cls in pipeline_map.HIERARCHY:
        own = pipeline_map.defined_methods(cls)
        assert own and all(name in vars(cls) for name in own)
        assert f"{cls.__name__}\n\n" + "\n".join(f"{name}()" for name in own) in texts
    assert "guarded_inference" in pipeline_map.defined_methods(handlerkit.BaseHandler)
    assert pipeline_map.defined_methods(handlerkit.ImageClassifier) == ["postprocess"]
    plt.close(fig)


def test_save_writes_the_png_the_readme_shows(tmp_path):
    out = pipeline_map.save_pipeline_map(tmp_path / "map.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 50_000
    assert DOCS_MAP.is_file(), (
        "regenerate: python -m handlerkit.show.pipeline_map docs/pipeline_map.png"
    )
