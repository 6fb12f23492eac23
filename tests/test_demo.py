"""`yolo-kd demo` (issue 14), shrunk to seconds: it writes the side-by-side picture, the attention maps and the
closing table, and a second run reuses the trained teacher."""

from __future__ import annotations

import cv2
import pytest


@pytest.mark.slow
def test_demo_writes_picture_attention_and_table(tmp_path, capsys):
    from yolo_kd.demo import run_demo

    kw = dict(root=str(tmp_path / "data"), train=16, val=8, imgsz=64, teacher_epochs=1, epochs=1, batch=8, show=2,
              project=str(tmp_path / "demo"))
    rows = run_demo(**kw)
    out = capsys.readouterr().out
    demo = tmp_path / "demo"
    assert set(rows) == {"teacher", "baseline", "distilled"}
    picture = cv2.imread(str(demo / "compare.png"))
    assert picture is not None
    tile = 256  # 64 px images drawn 4x
    assert picture.shape[0] == 28 + 2 * tile and picture.shape[1] == 3 * tile + 2 * 6  # 2 images x 3 models
    assert (demo / "attention" / "attention_0.png").exists()
    table = (demo / "demo_table.txt").read_text()
    for word in ("teacher", "baseline", "distilled", "mAP50-95", "s/epoch", "ONNX max |diff|", "stage times"):
        assert word in table, word
    assert table in out and "yolo-kd check teacher=" in out
    assert rows["distilled"]["onnx"] < 1e-3
    assert rows["teacher"]["params"] > rows["distilled"]["params"] == rows["baseline"]["params"]

    teacher = demo / "teacher" / "weights" / "best.pt"
    stamp = teacher.stat().st_mtime_ns
    run_demo(**kw, seed=1)  # second run, another students' seed: the teacher is reused, the students retrained
    assert teacher.stat().st_mtime_ns == stamp
    assert "teacher (reused when already trained) done" in capsys.readouterr().out
