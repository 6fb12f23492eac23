"""One demo-teacher setting, for the README's demo section:
`python docs/demo/teacher_sweep.py NAME SEED '{json}' ['{data json}']`.

Trains the demo's yolov8s teacher for 25 epochs on the demo data (`yolo-kd demo` generates it) with the demo's
training settings (yolo_kd.demo.TRAIN: validation after the last epoch only) updated by the JSON keys (`batch` sets
batch and nbs), and appends its final mAP50-95 and wall time to docs/demo/teacher_sweep.ndjson. The optional second
JSON changes the demo's data (keys of yolo_kd.demo.DEMO: train, val, root); the data are then generated first."""

import json
import shutil
import sys
import time
from pathlib import Path

from yolo_kd.offline import use_offline_mode

use_offline_mode()
from yolo_kd.demo import TRAIN, check_demo_keys, demo_data  # noqa: E402
from yolo_kd.runs import read_results, train_teacher  # noqa: E402

name, seed, extra = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
data_keys = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
data = demo_data(check_demo_keys(data_keys))
run_dir = Path(f"runs/demo-teacher-sweep/{name}_s{seed}")
shutil.rmtree(run_dir, ignore_errors=True)
args = {**TRAIN, **extra}
batch = args.pop("batch", 8)
t0 = time.time()
train_teacher("yolov8s.yaml", run_dir, data=data, imgsz=64, seed=seed, device="cpu",
              epochs=25, batch=batch, nbs=batch, **args)
last = read_results(run_dir)[-1]
line = dict(name=name, seed=seed, extra=extra, data=data_keys, map=last["metrics/mAP50-95(B)"],
            map50=last["metrics/mAP50(B)"], wall=time.time() - t0, train_time=last["time"])
print(json.dumps(line))
with open(Path(__file__).parent / "teacher_sweep.ndjson", "a") as f:
    f.write(json.dumps(line) + "\n")
