"""KDTrainer: Ultralytics' DetectionTrainer with a frozen teacher and the KD loss added inside the normal loss call.

Everything else is Ultralytics': dataloaders, augmentation, AMP, gradient accumulation, EMA, validation, callbacks,
loggers, checkpoints and export. What this class adds, and where:

* `__init__`      splits KD keys from Ultralytics keys (get_cfg rejects unknown keys), validates them and the
                  teacher before any run directory is written, and uses all CPU cores on CPU.
* `build_optimizer` loads the teacher on the student's device and builds the Distiller, whose parameters join the
                  student's in the optimizer's param groups.
* `_setup_train`  attaches `KDCriterion` to the student after the EMA copy exists, so the EMA, validation and
                  checkpoints keep the plain student and its plain YOLO loss (KD columns read 0 in validation).
* `save_model`    stores the Distiller state and KD settings beside the student under the checkpoint key "kd".
* `train`         under multi-GPU, carries the KD keys into Ultralytics' generated DDP script; each rank then
                  reloads the teacher from its path.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml
from torch import distributed as dist
from torch import nn

from ultralytics.data.utils import check_det_dataset
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, colorstr
from ultralytics.utils.torch_utils import unwrap_model

from .config import KDConfig, split_overrides
from .criterion import KDCriterion
from .distiller import Distiller
from .teacher import Teacher, TeacherError, check_levels, detect_head, head_outputs, load_teacher


class _StudentWithKD(nn.Module):
    """Optimizer view of the trainable parameters: the student plus the Distiller (named like Ultralytics' own
    distillation wrapper so its param grouping, e.g. MuSGD's head boost, finds the student)."""

    def __init__(self, student: nn.Module, distiller: nn.Module):
        super().__init__()
        self.student_model = student
        self.distiller = distiller


class _StudentAndTeacher(nn.Module):
    """What `batch=-1` must size on an accelerator: a student training step plus the teacher's forward pass."""

    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.stride, self.yaml, self.names = student.stride, student.yaml, student.names  # read by AutoBatch

    def forward(self, x):
        with torch.no_grad():
            t = self.teacher.eval()(x)
        return self.student(x), t


def use_all_cpu_cores() -> None:
    """Ultralytics caps torch at cpu_count-1 threads on CPU; training here is compute-bound, so use every core."""
    torch.set_num_threads(os.cpu_count() or 1)


class KDTrainer(DetectionTrainer):
    """Detection trainer that distils a frozen teacher into the student (`model=` / `student=`).

    Examples:
        >>> from yolo_kd import KDTrainer
        >>> KDTrainer(overrides=dict(model="yolov8n.yaml", teacher="teacher.pt", data="data.yaml")).train()
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None):
        ul, kd = split_overrides(overrides)
        if ul.get("resume") is True and str(ul.get("model", "")).endswith(".pt"):
            ul["resume"] = ul["model"]  # `resume=True model=last.pt`, as with `yolo train resume model=...`
        if ul.get("resume"):
            kd = {**self._kd_settings_from_checkpoint(ul), **{k: v for k, v in kd.items() if k == "teacher"}}
        self.kd_cfg = KDConfig.from_overrides(kd)
        self.teacher_model = None
        if self.kd_cfg.method != "none":
            if not self.kd_cfg.teacher:
                raise TeacherError(f"method={self.kd_cfg.method} needs a teacher: pass teacher=path/to/teacher.pt")
            data = check_det_dataset(ul["data"]) if ul.get("data") and not ul.get("resume") else None
            self.teacher_model = load_teacher(self.kd_cfg.teacher, names=data and data["names"])
            if data is not None:
                if ul.get("model"):
                    check_levels(self.teacher_model, ul["model"])
                self._check_teacher_classes(data)
        super().__init__(cfg, ul, _callbacks)
        self.teacher = None  # Teacher on the training device, built in build_optimizer
        self.distiller = None
        self._batches_this_epoch, self._epoch_seen = 0, -1
        if RANK in {-1, 0}:
            (self.save_dir / "kd.yaml").write_text(yaml.safe_dump(self.kd_cfg.as_dict(), sort_keys=False))
        if self.device.type == "cpu":
            use_all_cpu_cores()

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _kd_settings_from_checkpoint(ul: dict) -> dict:
        """KD settings recorded in the checkpoint being resumed, else in its run's kd.yaml."""
        resume = ul["resume"]
        path = resume if isinstance(resume, (str, Path)) and Path(resume).exists() else ul.get("model")
        if not path or not Path(path).exists():
            return {}
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if (ckpt.get("kd") or {}).get("cfg"):
            return dict(ckpt["kd"]["cfg"])
        run_cfg = Path(path).resolve().parents[1] / "kd.yaml"  # killed between the two checkpoint writes
        return yaml.safe_load(run_cfg.read_text()) if run_cfg.exists() else {}

    def _check_teacher_classes(self, data: dict) -> None:
        """Refuse a teacher whose classes differ from the data unless allow_class_mismatch=True."""
        t_names = getattr(self.teacher_model, "names", None)
        t_nc = detect_head(self.teacher_model).nc
        d_names = data["names"]
        same = t_nc == data["nc"] and (t_names is None or list(dict(t_names).values()) == list(dict(d_names).values()))
        if not same:
            msg = (
                f"teacher classes ({t_nc}: {t_names}) differ from the data's ({data['nc']}: {d_names}); logit and "
                f"box distillation need the same classes"
            )
            if not self.kd_cfg.allow_class_mismatch:
                raise TeacherError(msg + " (pass allow_class_mismatch=True to distil features only)")
            LOGGER.warning(msg + ": distilling features only")

    # ------------------------------------------------------------------ setup
    def _build_distiller(self) -> None:
        """Put the teacher on the student's device and build the Distiller from both models' feature shapes."""
        student = unwrap_model(self.model)
        self.teacher = Teacher(self.teacher_model, self.device)
        check_levels(self.teacher.model, student)
        s_head = detect_head(student)
        probe = torch.zeros(1, self.data.get("channels", 3), 64, 64, device=self.device)
        was_training = student.training
        student.eval()
        with torch.no_grad():
            s_ch = [f.shape[1] for f in head_outputs(student(probe)).feats]
            t_ch = [f.shape[1] for f in self.teacher(probe).feats]
        student.train(was_training)
        logits = self.teacher.nc == s_head.nc and self.teacher.reg_max == s_head.reg_max
        self.distiller = Distiller(self.kd_cfg, s_ch, t_ch, s_head.reg_max, logits=logits).to(self.device)
        n = sum(p.numel() for p in self.distiller.parameters())
        LOGGER.info(
            f"{colorstr('KD:')} method={self.kd_cfg.method} teacher={self.kd_cfg.teacher} channels {s_ch} -> {t_ch}, "
            f"terms {', '.join(self.distiller.terms) or 'none'}, {n:,} KD parameters"
        )

    def build_optimizer(self, model, *args, **kwargs):
        """Build the teacher and Distiller (their parameters must exist now), then one optimizer over student + KD."""
        if self.teacher_model is None:
            return super().build_optimizer(model, *args, **kwargs)
        if self.distiller is None:
            self._build_distiller()
        return super().build_optimizer(_StudentWithKD(unwrap_model(model), self.distiller), *args, **kwargs)

    def _setup_train(self):
        if self.args.compile and self.teacher_model is not None:
            LOGGER.warning("'compile' is not supported with yolo-kd distillation and will be disabled.")
            self.args.compile = False
        super()._setup_train()
        if self.distiller is not None:
            student = unwrap_model(self.model)
            base = student.criterion if getattr(student, "criterion", None) is not None else student.init_criterion()
            student.criterion = KDCriterion(base, self.teacher, self.distiller, self.kd_cfg.kd_branch)

    def auto_batch(self):
        """`batch=-1`: Ultralytics' AutoBatch, measured on the student step plus the teacher forward pass."""
        if self.teacher_model is None:
            return super().auto_batch()
        student = self.model
        self.model = _StudentAndTeacher(student, self.teacher_model.to(self.device))
        try:
            return super().auto_batch()
        finally:
            self.model = student

    def preprocess_batch(self, batch: dict) -> dict:
        """Ultralytics' preprocessing, plus the KD warm-up clock (epochs done, fractional)."""
        batch = super().preprocess_batch(batch)
        criterion = getattr(unwrap_model(self.model), "criterion", None)
        if isinstance(criterion, KDCriterion):
            epoch = getattr(self, "epoch", 0)  # set by the training loop
            if self._epoch_seen != epoch:
                self._epoch_seen, self._batches_this_epoch = epoch, 0
            criterion.progress = epoch + self._batches_this_epoch / max(len(self.train_loader), 1)
            self._batches_this_epoch += 1
        return batch

    def optimizer_step(self):
        """Average Distiller gradients across DDP ranks (the student's are averaged by DDP), then step."""
        if self.distiller is not None and self.world_size > 1 and dist.is_initialized():
            for p in self.distiller.parameters():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)  # unused on this rank: still join the collective
                dist.all_reduce(p.grad)
                p.grad /= self.world_size
        super().optimizer_step()

    # ------------------------------------------------------------------ checkpoints
    def kd_state(self) -> dict:
        """What a checkpoint needs to resume distillation: settings, teacher path and Distiller weights."""
        return {
            "cfg": self.kd_cfg.as_dict(),
            "teacher": self.kd_cfg.teacher,
            "state": None if self.distiller is None else {k: v.cpu() for k, v in self.distiller.state_dict().items()},
        }

    def save_model(self):
        """Ultralytics' checkpoints, then the "kd" entry added beside the student in each file just written."""
        saved = super().save_model()
        written = [self.last]
        if self.best_fitness == self.fitness:
            written.append(self.best)
        if self.save_period > 0 and self.epoch % self.save_period == 0:
            written.append(self.wdir / f"epoch{self.epoch}.pt")
        ckpt = torch.load(self.last, map_location="cpu", weights_only=False)
        ckpt["kd"] = self.kd_state()
        buffer = io.BytesIO()
        torch.save(ckpt, buffer)
        for f in written:  # atomic replace: a kill leaves the previous complete file
            tmp = f.with_suffix(".tmp")
            tmp.write_bytes(buffer.getvalue())
            os.replace(tmp, f)
        return saved

    def final_eval(self):
        """Drop the KD module weights from the finished last.pt/best.pt (only resume needs them; settings stay),
        then Ultralytics' final evaluation, which strips the optimizer."""
        for f in (self.last, self.best):
            if RANK in {-1, 0} and f.exists():
                ckpt = torch.load(f, map_location="cpu", weights_only=False)
                if (ckpt.get("kd") or {}).get("state") is not None:
                    ckpt["kd"]["state"] = None
                    tmp = f.with_suffix(".tmp")
                    torch.save(ckpt, tmp)
                    os.replace(tmp, f)
        super().final_eval()

    def resume_training(self, ckpt):
        """Ultralytics' resume, plus the Distiller weights (their optimizer state is in the shared optimizer)."""
        if ckpt is not None and self.resume and self.distiller is not None:
            state = (ckpt.get("kd") or {}).get("state")
            if state:
                self.distiller.load_state_dict(state)
                LOGGER.info(f"{colorstr('KD:')} restored KD modules from {self.args.model}")
            else:
                LOGGER.warning(f"{colorstr('KD:')} {self.args.model} holds no KD modules: they restart from scratch")
        super().resume_training(ckpt)

    # ------------------------------------------------------------------ DDP
    @contextmanager
    def _kd_keys_in_args(self):
        """Temporarily add the KD keys to self.args so Ultralytics' DDP script rebuilds this trainer with them."""
        keys = self.kd_cfg.as_dict()
        for k, v in keys.items():
            setattr(self.args, k, v)
        try:
            yield
        finally:
            for k in keys:
                delattr(self.args, k)

    def train(self):
        if self.ddp:
            with self._kd_keys_in_args():
                return super().train()
        return super().train()

    def _do_train(self):
        if self.device.type == "cpu":
            use_all_cpu_cores()
        super()._do_train()
        crit = getattr(unwrap_model(self.model), "criterion", None)
        if isinstance(crit, KDCriterion) and crit.skipped:
            LOGGER.warning(f"{colorstr('KD:')} {crit.skipped} batch(es) had non-finite KD terms and used YOLO loss only")


__all__ = ("KDTrainer",)
