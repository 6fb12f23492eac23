"""`yolo-kd bench` end to end on the micro preset: 1 seed, 1 epoch, 64 px, incl. Ultralytics' built-in KD."""

import csv
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_micro_writes_all_outputs(workdir):
    out = workdir / "bench"
    cmd = [sys.executable, "-m", "yolo_kd.cli", "bench", "preset=cfg/bench_micro.yaml", f"project={out}",
           f"dataset={{root: {workdir / 'bench-data'}, train: 16, val: 8, imgsz: 64, seed: 0}}"]
    subprocess.run(cmd, check=True)
    d = out / "micro"
    for f in ("results.md", "results.csv", "results.png"):
        assert (d / f).stat().st_size > 0, f
    rows = {r["method"]: r for r in csv.DictReader(open(d / "results.csv"))}
    assert set(rows) == {"none", "paper", "ultralytics"}
    assert float(rows["paper"]["step_ratio"]) > 0 and float(rows["ultralytics"]["step_ratio"]) > 0
    assert all(0 <= float(r["mAP50-95_mean"]) <= 1 and float(r["peak_mem_mib"]) > 0 for r in rows.values())
    # resumable: a second call trains nothing and rewrites the same table
    before = (d / "none-s0" / "bench.json").stat().st_mtime
    subprocess.run(cmd, check=True)
    assert (d / "none-s0" / "bench.json").stat().st_mtime == before


def test_peak_memory_is_this_process_not_its_parent():
    """A worker's peak RSS must not inherit the parent's (ru_maxrss does across fork/exec on Linux)."""
    code = "from yolo_kd.bench import peak_rss_mib; print(peak_rss_mib())"
    big = bytearray(600 * 2**20)  # the parent holds 600 MiB
    big[::4096] = b"\x01" * len(big[::4096])
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 500
    del big


def test_bench_settings_refuse_bad_keys():
    import pytest

    from yolo_kd.bench import load_settings
    from yolo_kd.config import KDConfigError

    assert load_settings("cfg/bench_quick.yaml", seeds="0,2")["seeds"] == [0, 2]
    assert load_settings("cfg/bench_quick.yaml")["epochs"] == 15  # `base: bench_cpu` extended
    with pytest.raises(KDConfigError, match="seeds=0"):
        load_settings("cfg/bench_micro.yaml", seeds=0)
    with pytest.raises(KDConfigError, match="sedes"):
        load_settings("cfg/bench_micro.yaml", sedes=1)
    assert load_settings("cfg/bench_micro.yaml", train_args="{nbs: 16}")["train_args"] == {"nbs": 16}
    with pytest.raises(KDConfigError, match="KD keys"):
        load_settings("cfg/bench_micro.yaml", train_args={"fr": 2.0})
    with pytest.raises(KDConfigError, match="nbz"):
        load_settings("cfg/bench_micro.yaml", train_args={"nbz": 16})
    classmap = load_settings("cfg/bench_classmap.yaml")
    assert classmap["relabel"] == ["star", "circle", "cross"] and classmap["dataset"]["classes"] == 8
