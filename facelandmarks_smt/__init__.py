"""facelandmarks_smt: facial landmarks with SMT-Net (Stacked Multi-Target Network, CVPR-W 2019).

    from facelandmarks_smt import Detector
    faces = Detector.from_pretrained("smtnet-300w-small").detect("photo.jpg")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Detector", "Face", "FaceInputWarning", "ModelConfig", "get_config", "load_weights", "save_weights", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: `import facelandmarks_smt` stays cheap and torch-free
    if name in ("Detector", "Face"):
        from . import detector

        return getattr(detector, name)
    if name == "FaceInputWarning":
        from .images import FaceInputWarning

        return FaceInputWarning
    if name in ("ModelConfig", "get_config"):
        from . import config

        return getattr(config, name)
    if name in ("load_weights", "save_weights"):
        from . import weights_io

        return getattr(weights_io, name)
    raise AttributeError(f"module 'facelandmarks_smt' has no attribute {name!r}")
