"""KD losses, one file each. Every module in this package is imported here, and each loss registers itself for
its methods (`registry.register`), so a new loss file needs no other edit. Columns follow each class's `order`."""

import importlib
import pkgutil

from .registry import REGISTRY, KDContext, KDLoss, Pair, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from .cwd import ChannelWiseDistillation  # noqa: E402  (re-exported names)
from .decoupled_logit import DecoupledLogitDistillation  # noqa: E402
from .fam import FeatureAlignmentModule  # noqa: E402
from .feature_resampling import FeatureResampling, MaskedGenerativeDistillation  # noqa: E402
from .localization import LocalizationDistillation  # noqa: E402
from .logit_kd import SigmoidLogitDistillation  # noqa: E402
from .mimic import FeatureMimic  # noqa: E402
from .spatial_attention import SpatialAttention, foreground_maps, spatial_weights  # noqa: E402

__all__ = (
    "REGISTRY",
    "ChannelWiseDistillation",
    "DecoupledLogitDistillation",
    "FeatureAlignmentModule",
    "FeatureMimic",
    "FeatureResampling",
    "KDContext",
    "KDLoss",
    "LocalizationDistillation",
    "MaskedGenerativeDistillation",
    "Pair",
    "SigmoidLogitDistillation",
    "SpatialAttention",
    "foreground_maps",
    "register",
    "spatial_weights",
)
