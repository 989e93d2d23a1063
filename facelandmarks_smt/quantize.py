"""Deprecated import path, kept for one release: int8 quantisation lives in `facelandmarks_smt.runtime.quantize`."""

from .runtime.quantize import (DEFAULT_NUM_CROPS, DEFAULT_SEED, FP32_NODE_PATTERNS, QUANT_SETTINGS,  # noqa: F401
                               _short, calibration_crops, head_nodes, quantize_int8, recipe_key)
