"""`yolo-kd demo` (issue 14), shrunk to seconds: it writes the side-by-side picture, the attention maps and the
closing table (in `make test`), and a second run with another students' seed reuses the trained teacher (slow)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One tiny demo run: (its keyword arguments, the returned rows, what it printed)."""
    import contextlib
    import io

    from yolo_kd.demo import run_demo

    tmp = tmp_path_factory.mktemp("demo")
    kw = dict(root=str(tmp / "data"), train=16, val=8, imgsz=64, teacher_epochs=1, epochs=1, batch=8, show=2,
              project=str(tmp / "demo"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rows = run_demo(**kw)
    return kw, rows, out.getvalue()


def test_demo_writes_picture_attention_and_table(demo):
    kw, rows, out = demo
    project = Path(kw["project"])
    assert set(rows) == {"teacher", "baseline", "distilled"}
    picture = cv2.imread(str(project / "compare.png"))
    assert picture is not None
    tile = 256  # 64 px images drawn 4x
    assert picture.shape[0] == 28 + 2 * tile and picture.shape[1] == 3 * tile + 2 * 6  # 2 images x 3 models
    assert cv2.imread(str(project / "attention" / "attention_0.png")) is not None
    table = (project / "demo_table.txt").read_text()
    for word in ("teacher", "baseline", "distilled", "mAP50-95", "s/epoch", "ONNX max |diff|", "stage times"):
        assert word in table, word
    assert table in out and "yolo-kd check teacher=" in out
    assert f"{project / 'compare.png'}" in out and f"{project / 'attention'}" in out
    assert rows["distilled"]["onnx"] < 1e-3
    assert rows["teacher"]["params"] > rows["distilled"]["params"] == rows["baseline"]["params"]


@pytest.mark.slow
def test_a_second_demo_reuses_the_teacher(demo, capsys):
    from yolo_kd.demo import run_demo

    kw, _, _ = demo
    teacher = Path(kw["project"]) / "teacher" / "weights" / "best.pt"
    stamp = teacher.stat().st_mtime_ns
    run_demo(**kw, seed=1)  # another students' seed: the teacher is reused, the students retrained
    assert teacher.stat().st_mtime_ns == stamp
    assert "teacher (reused when already trained) done" in capsys.readouterr().out
