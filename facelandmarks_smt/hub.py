"""Pretrained weights by name: where they are looked for, and their published checksums.

Lookup order for a name: ``$FACELANDMARKS_SMT_WEIGHTS``, the package's bundled ``weights/``
folder (a source checkout), then the user cache ``~/.cache/facelandmarks_smt``. Nothing is
downloaded implicitly; a name that is not installed raises an error saying what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PretrainedWeights:
    name: str
    filename: str
    sha256: str
    num_landmarks: int
    description: str


# One entry per published weights file; each has a model card weights/<name>.md with its numbers.
REGISTRY: dict[str, PretrainedWeights] = {
    "smtnet-300w-small": PretrainedWeights(
        name="smtnet-300w-small",
        filename="smtnet-300w-small.safetensors",
        sha256="b01b4d4efed13f30dbd7ea5b6326ded69558783c11283e0ee8ffe7205e2f725f",
        num_landmarks=68,
        description="SMT-Net small (128/256), 68 points, 300-W training folders, 52 min on a 2-core CPU; "
                    "300-W common NME 4.25% (gt boxes). Non-commercial research only (300-W licence).",
    ),
}


def search_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("FACELANDMARKS_SMT_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parent.parent / "weights")
    dirs.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facelandmarks_smt")
    return dirs


def available() -> list[str]:
    """Names of registered pretrained weights that are installed on this machine."""
    return [name for name in REGISTRY if _find(REGISTRY[name].filename) is not None]


def _find(filename: str) -> Path | None:
    for d in search_dirs():
        p = d / filename
        if p.is_file():
            return p
    return None


def resolve(name_or_path: str | os.PathLike) -> tuple[Path, str | None]:
    """``(path, expected sha256 or None)`` for a weights file path or a registered name."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"weights file not found: {p}")
        return p, None
    name = str(name_or_path)
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none yet"
        raise FileNotFoundError(
            f"no pretrained weights named {name!r}: registered names: {known}. No pretrained weights "
            "are installed with this version; pass the path of a .safetensors file trained with "
            "`python -m facelandmarks_smt.training train`, or use Detector.from_config() for a "
            "random-init model.")
    entry = REGISTRY[name]
    found = _find(entry.filename)
    if found is None:
        dirs = ", ".join(str(d) for d in search_dirs())
        raise FileNotFoundError(
            f"pretrained weights {name!r} ({entry.filename}) are not installed; looked in: {dirs}")
    return found, entry.sha256
