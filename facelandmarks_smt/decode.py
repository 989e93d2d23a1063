"""Deprecated import path, kept for one release: decoding lives in `facelandmarks_smt.codec`."""

from .codec import (CONFIDENCE_WINDOW, crop_to_heatmap, decode_heatmaps, heatmap_argmax,  # noqa: F401
                    heatmap_confidence, heatmap_to_crop)
