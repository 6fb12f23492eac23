"""Contracts with the Ultralytics internals yolo-kd relies on. A release that changes one of them fails a test named
after it here, not somewhere deep inside a training run."""

from __future__ import annotations

import inspect

import pytest
import torch


def test_assigner_return_order():
    """AssignmentTap reads (target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx)."""
    from ultralytics.utils.tal import TaskAlignedAssigner

    b, a, nc, n = 2, 8, 3, 2
    out = TaskAlignedAssigner(topk=4, num_classes=nc)(
        torch.rand(b, a, nc), torch.rand(b, a, 4) * 4 + torch.tensor([0, 0, 4, 4.0]), torch.rand(a, 2) * 8,
        torch.randint(0, nc, (b, n, 1)), torch.tensor([[1, 1, 6, 6.0]]).repeat(b, n, 1), torch.ones(b, n, 1))
    labels, bboxes, scores, fg, gt_idx = out
    assert labels.shape == (b, a) and bboxes.shape == (b, a, 4) and scores.shape == (b, a, nc)
    assert fg.shape == (b, a) and fg.dtype == torch.bool and gt_idx.shape == (b, a)


@pytest.mark.parametrize("cfg, end2end", [("yolov8n.yaml", False), ("yolo26n.yaml", True)])
def test_prediction_dict_keys(cfg, end2end):
    """Train mode: the raw dict (one2many/one2one for end-to-end heads) with boxes, scores, feats; eval mode: a
    (decoded, raw dict) tuple. The teacher relies on setting only the head's `training` flag to get the raw dict."""
    from ultralytics.nn.tasks import DetectionModel

    from yolo_kd.teacher import detect_head, head_outputs

    m = DetectionModel(cfg, nc=3, verbose=False)
    x = torch.rand(1, 3, 64, 64)
    train = m.train()(x)
    branches = [train["one2many"], train["one2one"]] if end2end else [train]
    assert all({"boxes", "scores", "feats"} <= set(p) for p in branches)
    m.eval()
    out = m(x)
    assert isinstance(out, tuple) and isinstance(out[1], dict)
    head = detect_head(m)
    head.training = True
    raw = m(x)
    head.training = False
    assert isinstance(raw, dict) and len(head_outputs(raw).feats) == len(head.stride)


def test_save_model_files_and_strip():
    """save_model writes last.pt, best.pt and epoch<N>.pt through `self.last`, `self.best` and `self.wdir` (redirected
    to a staging folder); final_eval strips through the module-level `strip_optimizer` (made atomic)."""
    import ultralytics.engine.trainer as ul_trainer
    from ultralytics.engine.trainer import BaseTrainer

    src = inspect.getsource(BaseTrainer.save_model)
    assert "self.last.write_bytes" in src and "self.best.write_bytes" in src and 'self.wdir / f"epoch' in src
    assert "strip_optimizer(self.last)" in inspect.getsource(BaseTrainer.final_eval)
    assert callable(ul_trainer.strip_optimizer)


def test_callback_events_used_for_the_schedule():
    """The KD schedule and health check hang on these events, run by BaseTrainer._do_train."""
    from ultralytics.engine.trainer import BaseTrainer

    src = inspect.getsource(BaseTrainer._do_train)
    for event in ("on_train_epoch_start", "on_train_batch_start", "on_train_epoch_end"):
        assert f'run_callbacks("{event}")' in src, event


def test_criterion_returns_scaled_vector_and_items_dict():
    """Ultralytics' detection loss returns (loss_vector * batch_size, {name: value}); the trainer derives its
    columns from the dict (KD columns are appended to it)."""
    from ultralytics.engine.trainer import BaseTrainer

    assert "self.loss_names = tuple(self.loss_items)" in inspect.getsource(BaseTrainer._do_train)


def test_ddp_args_pickling_and_autobatch_reads():
    """generate_ddp_file pickles `trainer.args` (yolo-kd adds its KD keys there for the relaunch); AutoBatch reads
    model.yaml (channels) and calls the model, which `_StudentAndTeacher` provides."""
    from ultralytics.utils import autobatch, dist

    assert '"args": vars(trainer.args)' in inspect.getsource(dist.generate_ddp_file)
    assert "model.yaml" in inspect.getsource(autobatch)


def test_check_resume_and_strip_keep_the_keys_we_read():
    """check_resume loads `ckpt['train_args']`; strip_optimizer keeps unknown top-level keys (our 'kd' provenance)."""
    from ultralytics.utils.torch_utils import strip_optimizer

    src = inspect.getsource(strip_optimizer)
    assert "combined = {**metadata, **x, **(updates or {})}" in src


def test_tuner_seams_used_by_yolo_kd_tune():
    """`yolo-kd tune` swaps the MultiTrainer that Tuner.__call__ imports at call time, sets KD keys on the tuner's
    args (read with getattr in _mutate), rounds integer keys in _constrain, and Ray trials call Model.train."""
    from ultralytics.engine.model import Model
    from ultralytics.engine.trainer import MultiTrainer
    from ultralytics.engine.tuner import Tuner
    from ultralytics.utils.tuner import run_ray_tune

    call = inspect.getsource(Tuner.__call__)
    assert "from ultralytics.engine.trainer import MultiTrainer" in call and "MultiTrainer(None," in call
    assert "getattr(self.args, k)" in inspect.getsource(Tuner._mutate)
    assert list(inspect.signature(Tuner._constrain).parameters) == ["self", "hyp"]
    assert list(inspect.signature(MultiTrainer.__init__).parameters)[:4] == ["self", "trainer", "args", "model"]
    assert "self.trainer(overrides=overrides" in inspect.getsource(MultiTrainer.train)
    assert "trainer" in inspect.signature(Model.train).parameters
    params = inspect.signature(run_ray_tune).parameters
    assert {"space", "grace_period", "gpu_per_trial", "iterations", "search_alg"} <= set(params)
