"""Models: single-stream fusion, two-tower late fusion, presets, checkpoints."""

from .base import MultimodalClassifier, count_parameters
from .presets import build_model, create_model, describe_presets, resolve_spec
from .registry import PRESETS

__all__ = ["MultimodalClassifier", "count_parameters", "PRESETS", "build_model", "create_model",
           "describe_presets", "resolve_spec"]
