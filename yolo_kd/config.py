"""KD settings: defaults, presets and validation, kept apart from Ultralytics' own `get_cfg` (which rejects keys it does
not know). `split_overrides` separates KD keys from Ultralytics keys; `KDConfig` holds and checks the KD ones."""

from __future__ import annotations

import functools
import math
from difflib import get_close_matches
from pathlib import Path
from types import SimpleNamespace

import yaml

from .grad_clip import GRAD_CLIP_MODES
from .losses.registry import REGISTRY, constraints, loss_keys
from .schedule import SCHEDULES

DEFAULTS_FILE = Path(__file__).parent / "cfg" / "default.yaml"  # keys of the trainer; each loss declares its own
TRAINER_DEFAULTS: dict = yaml.safe_load(DEFAULTS_FILE.read_text())
TRAINER_CHOICES = {"kd_branch": ("one2many", "one2one"), "kd_schedule": SCHEDULES, "kd_grad_clip": GRAD_CLIP_MODES}
SHARES = ("kd_max_skip", "kd_warmup", "kd_final", "kd_assign")  # must lie in [0, 1]
ALIASES = {"student": "model"}  # yolo-kd spelling -> Ultralytics key
# where kd=<name> is looked up: ./cfg, the source checkout's cfg/, the presets installed with the package
PRESET_DIRS = (Path.cwd() / "cfg", Path(__file__).resolve().parents[1] / "cfg", Path(__file__).parent / "presets")


def kd_defaults() -> dict:
    """Every KD key with its default: the trainer's, then each registered loss's (read from the registry now, so a
    loss registered after import is known too)."""
    return {**TRAINER_DEFAULTS, **loss_keys()}


def methods() -> tuple:
    """The registered methods, plus 'none' (the baseline)."""
    return (*REGISTRY, "none")


class KDConfigError(ValueError):
    """A KD setting is unknown or has an invalid value (raised before anything is written)."""


def suggest(key: str, valid) -> str:
    """' Did you mean 'x'?' for the closest valid keys ('fr_mak' -> 'fr_mask', 'fr_weigth' -> 'fr'), else ''."""
    valid = sorted(valid)
    near = get_close_matches(key, valid, n=3, cutoff=0.6)
    near += [v for v in valid if key.startswith(f"{v}_") and v not in near]  # fr_weight, tckd_w, ...
    return f" Did you mean {' or '.join(repr(n) for n in near[:3])}?" if near else ""


def summarize_names(names, limit: int = 6) -> str:
    """Class names for one line: '3: a, b, c' or '80: person, bicycle, ... (74 more)'."""
    names = list(dict(names).values()) if isinstance(names, dict) else list(names or [])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"{len(names)}: {', '.join(map(str, names[:limit]))}{more}"


def _ultralytics_keys() -> frozenset:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return frozenset(DEFAULT_CFG_DICT) | {"save_dir", "augmentations"}


def find_preset(name: str | Path) -> Path:
    """Resolve a preset given as a path or as a bare name ('paper' -> cfg/paper.yaml)."""
    p = Path(name)
    candidates = [p] + [d / p.name for d in PRESET_DIRS] + [d / f"{p.name}.yaml" for d in PRESET_DIRS]
    for c in candidates:
        if c.is_file():
            return c
    raise KDConfigError(f"KD preset '{name}' not found (looked in {', '.join(str(d) for d in PRESET_DIRS)})")


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file that must hold a mapping; KDConfigError in one line for invalid YAML or another shape."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise KDConfigError(f"{what} {path} is not valid YAML ({getattr(e, 'problem', None) or e}{where})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KDConfigError(f"{what} {path} cannot be read ({e})") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise KDConfigError(
            f"{what} {path} must be a mapping of keys ('key: value' lines), not a YAML {type(values).__name__}"
        )
    return values


def load_preset(name: str | Path, _depth: int = 0) -> dict:
    """Keys of a preset YAML: KD keys, and Ultralytics train keys (e.g. lr0 in a `yolo-kd tune` result); a preset may
    extend another with `kd: <base preset>`."""
    path = find_preset(name)
    values = dict(_read_preset(str(path), path.stat().st_mtime_ns))
    keys = kd_defaults().keys() | _ultralytics_keys()
    unknown = set(values) - keys
    if unknown:
        bad = sorted(map(str, unknown))
        raise KDConfigError(f"preset {path} has unknown keys {bad}.{suggest(bad[0], keys)}")
    base = values.pop("kd", None)
    if base and _depth < 8:
        values = {**load_preset(base, _depth + 1), **values}
    return values


@functools.lru_cache(maxsize=32)
def _read_preset(path: str, mtime_ns: int) -> dict:
    """A preset file's mapping, read once per file version (start-up reads it for its KD and its Ultralytics keys)."""
    return read_yaml_mapping(Path(path), "KD preset")


def split_overrides(overrides: dict | None) -> tuple[dict, dict]:
    """Split `overrides` into (ultralytics_overrides, kd_overrides), resolving aliases and unknown keys.

    Raises:
        KDConfigError: for a key that neither Ultralytics nor yolo-kd knows, with the closest valid suggestions.
    """
    ul, kd = {}, {}
    known = _ultralytics_keys()
    kd_keys = kd_defaults().keys()
    for k, v in (overrides or {}).items():
        k = ALIASES.get(k, k)
        if k in kd_keys:
            kd[k] = v
        elif k in known:
            ul[k] = v
        else:
            hint = suggest(k, known | set(kd_keys) | set(ALIASES))
            raise KDConfigError(f"'{k}' is not a valid yolo-kd or Ultralytics argument.{hint}")
    if kd.get("kd"):  # Ultralytics keys of the preset, below the explicit ones
        ul = {**{k: v for k, v in load_preset(kd["kd"]).items() if k not in kd_keys}, **ul}
    return ul, kd


def starts_from_weights(ul: dict) -> bool:
    """True when Ultralytics overrides make the student start from trained weights (model=*.pt or pretrained=*.pt),
    i.e. fine-tuning rather than training from scratch."""
    return str(ul.get("model") or "").endswith(".pt") or str(ul.get("pretrained") or "").endswith(".pt")


def finetune_preset(name: str | Path) -> dict:
    """The KD keys that a `kd_finetune` preset sets: its own and its base's, never `method` (or `kd`)."""
    return {k: v for k, v in load_preset(name).items() if k in kd_defaults() and k not in ("method", "kd")}


def finetune_summary(cfg) -> str:
    """'tckd=1.0, nckd=2.0, bgkd=0.5': the keys of cfg's `kd_finetune` preset with the values cfg ended up with."""
    return ", ".join(f"{k}={getattr(cfg, k)}" for k in finetune_preset(cfg.kd_finetune))


class KDConfig(SimpleNamespace):
    """Validated KD settings: defaults < fine-tuning preset (`kd_finetune`, students that start from trained weights)
    < preset (`kd=`) < explicit keys."""

    @classmethod
    def from_overrides(cls, kd_overrides: dict | None = None, finetuning: bool = False) -> KDConfig:
        """Build from KD overrides, loading the `kd=` preset if given (and the `kd_finetune` preset when
        `finetuning`), and validate."""
        kd_overrides = dict(kd_overrides or {})
        values = kd_defaults()
        preset = {}
        if kd_overrides.get("kd"):
            preset = {k: v for k, v in load_preset(kd_overrides["kd"]).items() if k in values}
        finetune = {**values, **preset, **kd_overrides}["kd_finetune"]
        if finetuning and finetune:  # below the preset and the explicit keys; never the method
            values.update(finetune_preset(finetune))
        values.update(preset)
        values.update(kd_overrides)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check types and ranges of every key; raise KDConfigError naming the first bad one."""
        if self.method is None:  # `method=none` on the CLI: Ultralytics' smart_value turns 'none' into None
            self.method = "none"
        defaults = kd_defaults()
        for k, default in defaults.items():
            v = getattr(self, k)
            if isinstance(default, bool):
                if isinstance(v, str) and v.lower() in {"true", "false"}:
                    v = v.lower() == "true"
                if not isinstance(v, bool):
                    raise KDConfigError(f"'{k}={v}' must be True or False")
            elif isinstance(default, (int, float)):
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    raise KDConfigError(f"'{k}={v}' must be a number") from None
                if not math.isfinite(v) or v < 0:
                    raise KDConfigError(f"'{k}={v}' must be a finite, non-negative number")
            setattr(self, k, v)
        loss_choices, fractions, loss_shares, positive = constraints()
        for k, options in {"method": methods(), **TRAINER_CHOICES, **loss_choices}.items():
            if getattr(self, k) not in options:
                raise KDConfigError(f"'{k}={getattr(self, k)}' is not one of {', '.join(options)}")
        for k in fractions:
            if not 0 <= getattr(self, k) < 1:
                raise KDConfigError(f"'{k}={getattr(self, k)}' must lie in [0, 1)")
        if self.kd_finetune:
            find_preset(self.kd_finetune)  # a missing fine-tuning preset fails from scratch too, before any file
        for k in SHARES + loss_shares:
            if not 0 <= getattr(self, k) <= 1:
                raise KDConfigError(f"'{k}={getattr(self, k)}' must lie in [0, 1]")
        for k in positive:
            if getattr(self, k) <= 0:
                raise KDConfigError(f"'{k}={getattr(self, k)}' must be > 0")
        self.kd_hold = ",".join(self._held_keys())

    def _held_keys(self) -> tuple[str, ...]:
        """`kd_hold` as a tuple of weight keys ('th', 'th,fr', ['th'] or empty); KDConfigError for a key that weighs
        no KD term."""
        v = self.kd_hold
        names = [str(n).strip() for n in (v if isinstance(v, (list, tuple)) else str(v or "").split(","))]
        names = tuple(n for n in names if n)
        weights = {key for classes in REGISTRY.values() for cls in classes for key in cls.columns.values()}
        for n in names:
            if n not in weights:
                raise KDConfigError(f"'kd_hold={v}': '{n}' is not the weight key of a KD term "
                                    f"(e.g. {', '.join(sorted(weights)[:6])}).{suggest(n, weights)}")
        return names

    @property
    def held(self) -> tuple[str, ...]:
        """The weight keys named in `kd_hold` (their terms skip the decay of `kd_schedule`)."""
        return tuple(n for n in (self.kd_hold or "").split(",") if n)

    def as_dict(self) -> dict:
        """Plain dict of all KD keys (for args.yaml, checkpoints and the DDP relaunch)."""
        return {k: getattr(self, k) for k in kd_defaults()}
