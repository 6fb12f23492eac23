"""KDTrainer: Ultralytics' DetectionTrainer with a frozen teacher and the KD loss added inside the normal loss call.

Everything else is Ultralytics': dataloaders, augmentation, AMP, gradient accumulation, EMA, validation, callbacks,
loggers, checkpoints and export. What this class adds, and where:

* `__init__`      splits KD keys from Ultralytics keys (get_cfg rejects unknown keys), validates them and the
                  teacher before any run directory is written, and uses all CPU cores on CPU.
* `build_optimizer` loads the teacher on the student's device and builds the Distiller, whose parameters join the
                  student's in the optimizer's param groups.
* `_setup_train`  attaches `KDCriterion` to the student after the EMA copy exists, so the EMA, validation and
                  checkpoints keep the plain student and its plain YOLO loss (KD columns read 0 in validation).
* `save_model`    publishes Ultralytics' checkpoints atomically and writes the Distiller state and KD settings in a
                  sidecar beside each (weights/kd_last.pt, ...).
* `train`         under multi-GPU, carries the KD keys into Ultralytics' generated DDP script; each rank then
                  reloads the teacher from its path.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml
from torch import distributed as dist
from torch import nn

from ultralytics.data.utils import check_det_dataset
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, colorstr
from ultralytics.utils.torch_utils import unwrap_model

from .checkpoints import (
    atomic_strip_optimizer,
    atomic_write,
    kd_sidecar,
    load_kd_entry,
    publish,
    serialize,
    staged_checkpoints,
)
from .classmap import ClassMap, resolve_class_map
from .config import KDConfig, finetune_summary, kd_defaults, split_overrides, starts_from_weights, summarize_names
from .criterion import KDCriterion, KDTrainingError
from .distiller import build_distiller
from .grad_clip import clip_jointly
from .neck import BackboneTap, neck_inputs
from .preflight import check_device, check_student, check_ultralytics_args, check_writable, resolve_resume, run_parent
from .schedule import kd_scale
from .teacher import (
    Teacher,
    TeacherError,
    check_channels,
    check_levels,
    class_names,
    load_teacher,
    warn_if_same_model,
)


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


def average_gradients(params, world_size: int) -> None:
    """All-reduce and average the gradients of `params` across DDP ranks (for the KD modules, which DDP does not
    wrap). A parameter without a gradient on this rank contributes zeros, so every rank joins every collective."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world_size


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
        check_ultralytics_args(ul)
        resuming = bool(ul.get("resume"))
        if resuming:
            path, ckpt = resolve_resume(ul)  # `resume=True model=last.pt` or a bare `resume=True`
            ul["resume"] = ul["model"] = path
            kd = self._kd_settings_for_resume(path, ckpt, kd)
        finetuning = not resuming and starts_from_weights(ul)
        self.kd_cfg = KDConfig.from_overrides(kd, finetuning=finetuning)
        if finetuning and self.kd_cfg.kd_finetune and self.kd_cfg.method != "none":
            LOGGER.info(f"{colorstr('KD:')} the student starts from trained weights: defaults from "
                        f"kd_finetune={self.kd_cfg.kd_finetune} ({finetune_summary(self.kd_cfg)}); "
                        f"kd_finetune='' keeps the from-scratch defaults")
        check_device(ul.get("device"))
        student = None
        if not resuming:
            student = check_student(ul.get("model"))
            check_writable(run_parent(ul), f"project={ul.get('project') or run_parent(ul)}")
        self.teacher_model = self._load_and_check_teacher(ul, student, resuming) if self.kd_cfg.method != "none" else None
        try:
            super().__init__(cfg, ul, _callbacks)
        except BaseException:
            self._remove_fresh_run_dir()
            raise
        self.teacher = None  # Teacher on the training device, built in build_optimizer
        self.distiller = None
        self._batches_this_epoch = 0
        if RANK in {-1, 0}:
            (self.save_dir / "kd.yaml").write_text(yaml.safe_dump(self.kd_cfg.as_dict(), sort_keys=False))
        if self.device.type == "cpu":
            use_all_cpu_cores()

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _kd_settings_for_resume(path: str, ckpt: dict, explicit: dict) -> dict:
        """KD settings recorded with the checkpoint being resumed (else in its run's kd.yaml). Only `teacher=` may be
        changed on resume (the teacher file moved); other KD keys given with resume are named and ignored."""
        recorded = dict(load_kd_entry(path, ckpt).get("cfg") or {})
        run_cfg = Path(path).resolve().parents[1] / "kd.yaml"
        if not recorded and run_cfg.exists():
            recorded = yaml.safe_load(run_cfg.read_text()) or {}
        ignored = sorted(k for k, v in explicit.items() if k != "teacher" and v != recorded.get(k, kd_defaults().get(k)))
        if ignored:
            LOGGER.warning(f"{colorstr('KD:')} resume ignores KD keys {ignored}, using the checkpoint's values. "
                           f"Start a new run to change them.")
        return {**recorded, **{k: v for k, v in explicit.items() if k == "teacher"}}

    def _load_and_check_teacher(self, ul: dict, student, resuming: bool) -> nn.Module:
        """Load the teacher and check it against the data (classes) and the student (levels), before any run folder
        is written."""
        if not self.kd_cfg.teacher:
            raise TeacherError(f"method={self.kd_cfg.method} needs a teacher: pass teacher=path/to/teacher.pt")
        if resuming and not str(self.kd_cfg.teacher).endswith((".yaml", ".yml")) and not Path(self.kd_cfg.teacher).exists():
            raise TeacherError(f"this run's teacher '{self.kd_cfg.teacher}' is not found (moved or deleted): add "
                               f"teacher=<its new path> to the resume command")
        data = check_det_dataset(ul["data"]) if ul.get("data") and not resuming else None
        teacher = load_teacher(self.kd_cfg.teacher, names=data and data["names"], channels=data and data.get("channels", 3))
        if data is not None:
            check_channels(teacher, data.get("channels", 3), self.kd_cfg.teacher)
            if isinstance(student, nn.Module) or str(student).endswith((".yaml", ".yml")):
                check_levels(teacher, student)
            self._check_teacher_classes(teacher, data)
        if isinstance(student, nn.Module):
            warn_if_same_model(teacher, student, self.kd_cfg.teacher, ul.get("model"))
        return teacher

    def _remove_fresh_run_dir(self) -> None:
        """After a refused start, remove the run folder Ultralytics just made if it holds only args.yaml and an empty
        weights/ (no files left behind)."""
        d = getattr(self, "save_dir", None)
        if RANK not in {-1, 0} or d is None or not Path(d).is_dir():
            return
        left = {p.relative_to(d).as_posix() for p in Path(d).rglob("*")}
        if left <= {"args.yaml", "weights"}:
            shutil.rmtree(d, ignore_errors=True)

    def _check_teacher_classes(self, teacher: nn.Module, data: dict) -> ClassMap | None:
        """Map the data's classes to the teacher's (by name, or `class_map=`); refuse a teacher that shares no class
        with the data unless allow_class_mismatch=True (features only). Returns the map (None: features only)."""
        t_names = class_names(teacher)
        cmap = resolve_class_map(t_names, data["names"], self.kd_cfg.class_map)
        if cmap is None:
            msg = (
                f"teacher classes ({summarize_names(t_names)}) share no class with the data's "
                f"({summarize_names(data['names'])}); logit distillation needs shared classes"
            )
            if not self.kd_cfg.allow_class_mismatch:
                raise TeacherError(msg + " (map them with class_map=\"{data_name: teacher_name}\", or pass "
                                   "allow_class_mismatch=True to distil features only)")
            LOGGER.warning(msg + ": distilling features only")
        elif not cmap.identity:
            LOGGER.info(f"{colorstr('KD:')} {cmap.describe()}")
        return cmap

    # ------------------------------------------------------------------ setup
    def _build_distiller(self) -> None:
        """Put the teacher on the student's device and build the Distiller from both models' feature shapes."""
        student = unwrap_model(self.model)
        self.teacher = Teacher(self.teacher_model, self.device)
        check_levels(self.teacher.model, student)
        self.distiller = build_distiller(self.kd_cfg, student, self.teacher.model, self.data["names"],
                                         self.data.get("channels", 3))[0].to(self.device)
        for term, reason in self.distiller.skipped.items():
            LOGGER.warning(f"{colorstr('KD:')} {term} is configured but not built: {reason}")
        for key in self.distiller.idle_holds:
            LOGGER.warning(f"{colorstr('KD:')} kd_hold names '{key}', whose term is not built here (set {key}>0 to "
                           f"train it), so it holds nothing")
        n = sum(p.numel() for p in self.distiller.parameters())
        LOGGER.info(
            f"{colorstr('KD:')} method={self.kd_cfg.method} teacher={self.kd_cfg.teacher} channels "
            f"{list(self.distiller.pair.s_channels)} -> {list(self.distiller.pair.t_channels)}, "
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
            student.criterion = KDCriterion(base, self.teacher, self.distiller, self.kd_cfg.kd_branch,
                                            self.kd_cfg.kd_budget, self._assign_share())
            if "tn_loss" in self.distiller.terms:  # the teacher-neck term reads the student's neck inputs
                student.criterion.backbone_tap = BackboneTap(student, neck_inputs(student)[1])
                student.criterion.backbone_tap.attach()  # off at each epoch's end, on again at its first batch

    def _assign_share(self) -> float:
        """`kd_assign`, or 0 with a one-line warning when the teacher cannot guide the assignment."""
        share, pair = float(self.kd_cfg.kd_assign), self.distiller.pair
        reason = ("the teacher's DFL bins differ from the student's" if not pair.same_reg_max else
                  "the teacher shares no class with the data" if not pair.same_classes else None)
        if share > 0 and reason:
            LOGGER.warning(f"{colorstr('KD:')} kd_assign={share} is configured but not used: {reason}")
            return 0.0
        return share

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

    def optimizer_step(self):
        """Zero non-finite gradient entries (left by a KD term that was non-finite; done on the device, no host
        sync), average Distiller gradients across DDP ranks (the student's are averaged by DDP), clip student and
        Distiller jointly if `kd_grad_clip=joint` (yolo_kd/grad_clip.py), then step.
        Under AMP the gradients are left as they are: the GradScaler must see an overflow to skip that step and lower
        its scale (zeroing them would freeze every overflowing weight, batch after batch, at the initial 2^16 scale)."""
        if self.distiller is not None:
            params = (*unwrap_model(self.model).parameters(), *self.distiller.parameters())
            if not self.scaler.is_enabled():
                for p in params:
                    if p.grad is not None:
                        p.grad.nan_to_num_(0.0, 0.0, 0.0)
            if self.world_size > 1 and dist.is_initialized():
                average_gradients(self.distiller.parameters(), self.world_size)
            if self.kd_cfg.kd_grad_clip == "joint":
                scale = 1.0
                if self.scaler.is_enabled():  # as a device tensor: get_scale() would sync with the host each step
                    scale = getattr(self.scaler, "_scale", None)
                    scale = self.scaler.get_scale() if scale is None else scale
                clip_jointly(params, scale=scale)
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
        """Ultralytics' checkpoints, written into a staging folder and published with atomic renames (never reread or
        rewritten), then the KD modules' state written atomically beside each one (weights/kd_last.pt, ...). A kill
        or a failed write at any moment leaves the previous or the new complete file."""
        with staged_checkpoints(self) as stage:
            saved = super().save_model()
        published = publish(stage, self.wdir)
        if published and RANK in {-1, 0}:
            data = serialize({**self.kd_state(), "epoch": self.epoch})
            for f in published:
                atomic_write(kd_sidecar(f), data)
        return saved

    def final_eval(self):
        """Ultralytics' final evaluation, whose optimizer stripping is made atomic and records the KD settings and
        teacher in the finished last.pt/best.pt (provenance; no KD weights). The KD sidecars of last/best go: only
        resume needs them."""
        with atomic_strip_optimizer({"kd": {**self.kd_state(), "state": None}}):
            super().final_eval()
        if RANK in {-1, 0}:
            for f in (self.last, self.best):
                kd_sidecar(f).unlink(missing_ok=True)

    def resume_training(self, ckpt):
        """Ultralytics' resume, plus the Distiller weights from the checkpoint's KD sidecar (their optimizer state is in
        the shared optimizer)."""
        if ckpt is not None and self.resume and self.distiller is not None:
            entry = load_kd_entry(self.args.model, ckpt)
            state, epoch = entry.get("state"), entry.get("epoch")
            if state:
                self.distiller.load_state_dict(state)
                LOGGER.info(f"{colorstr('KD:')} restored KD modules from {kd_sidecar(self.args.model)}")
                if epoch is not None and epoch != ckpt.get("epoch"):
                    LOGGER.warning(f"{colorstr('KD:')} KD modules are from epoch {epoch + 1}, the student from epoch "
                                   f"{ckpt.get('epoch', -1) + 1} (killed between the two writes)")
            else:
                LOGGER.warning(f"{colorstr('KD:')} no KD modules saved for {self.args.model}: they restart from scratch")
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
        crit = self._kd_criterion()
        if crit is not None and crit.skipped_before:
            LOGGER.warning(f"{colorstr('KD:')} {crit.skipped_before} batch(es) had non-finite KD terms and used YOLO loss only")

    def run_callbacks(self, event: str):
        """Ultralytics' callbacks, plus the KD schedule before each batch, and the KD health check and FAM log at
        the end of each training epoch. The student's backbone tap (teacher-neck term) is on for the training batches
        only: off at each epoch's end, before validation, checkpoints and any EMA rebuild copy the model."""
        tap = None
        if event in ("on_train_batch_start", "on_train_epoch_end", "on_train_end"):
            tap = getattr(self._kd_criterion(), "backbone_tap", None)
        if event == "on_train_epoch_start":
            self._batches_this_epoch = 0
        elif event == "on_train_batch_start":
            self.update_kd_scale()
            if tap is not None:
                tap.attach()
        elif event in ("on_train_epoch_end", "on_train_end") and tap is not None:
            tap.detach()
        if event == "on_train_epoch_end":
            self.check_kd_health()
            self.log_fam_alpha()
        super().run_callbacks(event)

    def _kd_criterion(self) -> KDCriterion | None:
        crit = getattr(unwrap_model(self.model), "criterion", None) if isinstance(self.model, nn.Module) else None
        return crit if isinstance(crit, KDCriterion) else None

    def update_kd_scale(self) -> None:
        """Set the KD multiplier for the coming batch from the schedule (warm-up, decay, KD-free final epochs)."""
        crit = self._kd_criterion()
        if crit is None:
            return
        c = self.kd_cfg
        done = getattr(self, "epoch", 0) + self._batches_this_epoch / max(len(self.train_loader), 1)
        crit.scale = kd_scale(done, self.epochs, c.kd_warmup, c.kd_schedule, int(c.kd_off_last), c.kd_final)
        crit.held_scale = kd_scale(done, self.epochs, c.kd_warmup, "constant", int(c.kd_off_last))
        self._batches_this_epoch += 1

    def log_fam_alpha(self) -> None:
        """Append this epoch's mean FAM attention per (student level, teacher level) pair to fam_alpha.csv."""
        fam = getattr(self.distiller, "fam", None)
        if fam is None or RANK not in {-1, 0}:
            return
        alphas = fam.alpha_means()
        if not alphas:
            return
        f = self.save_dir / "fam_alpha.csv"
        new = not f.exists()
        with open(f, "a") as fh:
            if new:
                fh.write(",".join(["epoch", *alphas]) + "\n")
            fh.write(",".join([str(getattr(self, "epoch", 0) + 1), *map(str, alphas.values())]) + "\n")

    def check_kd_health(self) -> None:
        """Read this epoch's non-finite KD counts (one host sync per epoch). Warn about them, and stop with
        KDTrainingError when a term was non-finite in more than `kd_max_skip` of the epoch's batches (training on
        without it would silently not distil)."""
        crit = self._kd_criterion()
        if crit is None:
            return
        bad, batches = crit.pop_bad_terms(), crit.batches_this_epoch
        crit.batches_this_epoch = 0
        if not bad:
            return
        crit.skipped_before += max(bad.values())
        LOGGER.warning(f"{colorstr('KD:')} non-finite KD terms this epoch {bad} (of {batches} batches): those batches "
                       f"trained on the YOLO loss only")
        for term, n in bad.items():
            if n > self.kd_cfg.kd_max_skip * batches:
                key = self.distiller.weight_key(term)
                raise KDTrainingError(
                    f"KD term {term} was non-finite in {n}/{batches} batches of epoch {getattr(self, 'epoch', 0) + 1} (over "
                    f"kd_max_skip={self.kd_cfg.kd_max_skip:g}): stopped instead of training without it. Lower its "
                    f"weight ({key}=...) or switch it off ({key}=0); weights/last.pt holds the last complete epoch"
                )


__all__ = ("KDTrainer",)
