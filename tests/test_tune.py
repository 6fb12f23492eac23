"""`yolo-kd tune` (issue 13): the default space, one-line errors before anything runs, a real local search that
resumes and writes a preset that `yolo-kd train kd=` accepts, and a real local Ray search (when Ray is installed)."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from conftest import IMGSZ
from test_errors import one_line_error


def test_default_space_holds_the_methods_weights_temperatures_and_schedule():
    from yolo_kd.config import kd_defaults
    from yolo_kd.tuning import default_space

    space = default_space("paper", epochs=40)
    assert {"fr", "kd_warmup", "kd_budget", "kd_off_last"} <= set(space)
    for off in ("ld", "ld_temp", "sam", "sam_temp", "fam", "tckd", "nckd", "bgkd", "kd_temp"):
        assert off not in space, off  # terms that are off by default stay off, their temperatures too
    assert set(default_space("kd", 40)) >= {"logit_kd", "kd_temp"}
    assert "cwd" not in space  # another method's key
    defaults = kd_defaults()
    for k, (lo, hi) in space.items():
        assert lo <= defaults[k] <= hi, k  # the defaults are inside the space (trial 1 trains them)
    assert space["kd_off_last"] == (0, 10)
    assert set(default_space("cwd", 40)) == {"cwd", "cwd_temp", "kd_warmup", "kd_budget", "kd_off_last"}


@pytest.mark.parametrize(
    "args, match",
    [
        (["space={'fr_weigth': [0, 2]}"], "'fr_weigth' is not a yolo-kd or Ultralytics key. Did you mean 'fr'"),
        (["space={'fr': [2, 1]}"], r"'fr: \[2, 1\]' must be \[min, max\]"),
        (["space={'fr': 3}"], "must be \\[min, max\\]"),
        (["space={'optimizer': [0, 1]}"], "'optimizer' is not numeric"),
        (["iterations=0"], "'iterations=0' must be a whole number >= 1"),
        (["method=none"], "method=none has no KD keys to tune"),
    ],
)
def test_bad_tune_input_fails_in_one_line_before_anything_runs(capsys, tmp_path, tiny_data, tiny_teacher, args, match):
    one_line_error(capsys, "tune", f"teacher={tiny_teacher}", "student=yolov8n.yaml", f"data={tiny_data}",
                   f"project={tmp_path}", *args, match=match)
    assert not any(tmp_path.iterdir())


def test_use_ray_without_ray_says_how_to_install(capsys, monkeypatch, tmp_path, tiny_data, tiny_teacher):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    one_line_error(capsys, "tune", f"teacher={tiny_teacher}", "student=yolov8n.yaml", f"data={tiny_data}",
                   f"project={tmp_path}", "use_ray=True", match=r"pip install 'yolo-kd\[ray\]'")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_tune_runs_kd_trials_resumes_and_writes_a_usable_preset(tmp_path, tiny_data, tiny_teacher):
    import yolo_kd
    from yolo_kd.config import KDConfig, split_overrides
    from yolo_kd.tuning import read_trials

    common = dict(teacher=tiny_teacher, student="yolov8n.yaml", data=tiny_data, epochs=1, imgsz=IMGSZ, batch=8,
                  device="cpu", workers=0, project=str(tmp_path), name="tune",
                  space={"fr": [0.0, 36.0], "kd_off_last": [0, 1], "lr0": [1e-4, 1e-2]})
    tune_dir = yolo_kd.tune(iterations=1, **common)
    trials = read_trials(tune_dir)
    assert [t["iteration"] for t in trials] == [1]
    assert trials[0]["hyperparameters"] == {"fr": 18.0, "kd_off_last": 0, "lr0": 0.01}  # trial 1 = the defaults
    trial_dir = next(tune_dir.glob("multitrain*/*/kd.yaml")).parent  # a KDTrainer run
    assert yaml.safe_load((trial_dir / "kd.yaml").read_text())["method"] == "paper"
    baseline = tune_dir / "baseline.json"
    assert "fitness" in json.loads(baseline.read_text())
    assert yaml.safe_load(next(tune_dir.glob("baseline/multitrain*/*/kd.yaml")).read_text())["method"] == "none"
    stamp = baseline.stat().st_mtime_ns

    tune_dir2 = yolo_kd.tune(iterations=2, resume=True, **common)  # an interrupted tune goes on where it stopped
    assert tune_dir2 == tune_dir
    trials = read_trials(tune_dir)
    assert [t["iteration"] for t in trials] == [1, 2]
    assert trials[1]["hyperparameters"] != trials[0]["hyperparameters"]  # mutated
    assert baseline.stat().st_mtime_ns == stamp  # the baseline is trained once

    best = tune_dir / "best_kd.yaml"
    values = yaml.safe_load(best.read_text())
    assert values["method"] == "paper" and set(values) == {"method", "fr", "kd_off_last", "lr0"}
    ul, kd = split_overrides({"kd": str(best), "data": tiny_data})  # `yolo-kd train kd=best_kd.yaml` takes it as is
    assert ul["lr0"] == values["lr0"]
    assert KDConfig.from_overrides(kd).fr == values["fr"]
    summary = (tune_dir / "summary.md").read_text()
    assert "best trial" in summary and "defaults (iteration 1)" in summary and "method=none" in summary


@pytest.mark.slow
@pytest.mark.ray
def test_ray_tune_runs_two_real_trials(tmp_path, tiny_data, tiny_teacher):
    pytest.importorskip("ray.tune", reason="Ray is an optional extra: pip install 'yolo-kd[ray]' (make test-ray)")
    import yolo_kd

    tune_dir = yolo_kd.tune(teacher=tiny_teacher, student="yolov8n.yaml", data=tiny_data, epochs=1, imgsz=IMGSZ,
                            batch=8, device="cpu", workers=0, project=str(tmp_path), name="ray", use_ray=True,
                            iterations=2, grace_period=1, space={"fr": [0.0, 2.0], "kd_warmup": [0.0, 0.5]})
    values = yaml.safe_load((tune_dir / "best_kd.yaml").read_text())
    assert values["method"] == "paper" and 0.0 <= values["fr"] <= 2.0 and 0.0 <= values["kd_warmup"] <= 0.5
    assert "best trial" in (tune_dir / "summary.md").read_text()
