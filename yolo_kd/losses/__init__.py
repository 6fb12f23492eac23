"""KD losses, one file each. Each registers itself for its methods (`registry.register`); importing this package
fills `REGISTRY`. The order of imports is the order of the logged columns."""

from .feature_resampling import FeatureResampling, MaskedGenerativeDistillation
from .spatial_attention import SpatialAttention, foreground_maps, spatial_weights
from .fam import FeatureAlignmentModule
from .decoupled_logit import DecoupledLogitDistillation
from .localization import LocalizationDistillation
from .mimic import FeatureMimic
from .cwd import ChannelWiseDistillation
from .logit_kd import SigmoidLogitDistillation
from .registry import REGISTRY, KDContext, KDLoss, Pair, register

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
