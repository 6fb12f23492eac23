"""KD loss modules, one file each. Every module returns per-term losses; `yolo_kd.distiller` weights and combines."""

from .cwd import ChannelWiseDistillation
from .decoupled_logit import DecoupledLogitDistillation
from .fam import FeatureAlignmentModule
from .feature_resampling import FeatureResampling
from .localization import LocalizationDistillation
from .logit_kd import SigmoidLogitDistillation
from .mimic import FeatureMimic
from .spatial_attention import SpatialAttention, foreground_maps, spatial_weights

__all__ = (
    "ChannelWiseDistillation",
    "DecoupledLogitDistillation",
    "FeatureAlignmentModule",
    "FeatureMimic",
    "FeatureResampling",
    "LocalizationDistillation",
    "SigmoidLogitDistillation",
    "SpatialAttention",
    "foreground_maps",
    "spatial_weights",
)
