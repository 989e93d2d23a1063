"""Pretrained weights by name: a registry of published files, where they are found, and downloads.

A registered name is looked for in ``$FACELANDMARKS_SMT_WEIGHTS``, in the package
(``facelandmarks_smt/weights/``, so ``pip install`` alone gives the small model, offline), and in
the user cache ``~/.cache/facelandmarks_smt``. A name found nowhere is downloaded from its
Hugging Face Hub repository with ``huggingface_hub.hf_hub_download`` (into the Hub's own cache,
``HF_HOME``/``HF_HUB_CACHE``; ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` apply as usual) and checked
against the sha256 written here, so a changed or corrupt file is never loaded. See
docs/publishing.md for how a release reaches the Hub and this registry.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from .fileio import sha256_file

#: Placeholder: the Hub repository that will hold the published weights. It does NOT exist yet;
#: create it (docs/publishing.md) before a release and put its id here.
PLACEHOLDER_HUB_REPO_ID = "facelandmarks-smt/PLACEHOLDER-create-before-release"

#: Folder of the weights that ship inside the package (package data).
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class PretrainedWeights:
    """One published weights file.

    ``revision`` should be the Hub commit hash of the upload (a branch name like ``"main"`` can
    move; the sha256 check catches that, but a pinned commit never needs it).
    """

    name: str
    filename: str
    sha256: str
    num_landmarks: int
    description: str
    repo_id: str = PLACEHOLDER_HUB_REPO_ID
    revision: str = "main"


# One entry per published weights file; each has a model card weights/<name>.md with its numbers.
REGISTRY: dict[str, PretrainedWeights] = {
    "smtnet-300w-small": PretrainedWeights(
        name="smtnet-300w-small",
        filename="smtnet-300w-small.safetensors",
        sha256="10623510e775cf841f7a773ef5ac6f81eba363092feda90532f8eadd8f935bd1",
        num_landmarks=68,
        description="SMT-Net small (128/256), 68 points, v8: v7 (itself the midpoint of v5 and a fine-tune on "
                    "eos-synthesized turned heads and heavy degradations) moved 0.3 of the way to a further "
                    "fine-tune of v7 on real + new turned views; 300-W common NME 3.37% (gt boxes), validation "
                    "(v5 -> v8): turned faces 14.7 -> 9.0, heavily degraded 10.6 -> 6.0. "
                    "Non-commercial research only (300-W and Surrey Face Model licences). Ships inside the package.",
    ),
    "smtnet-300w-small-wild": PretrainedWeights(
        name="smtnet-300w-small-wild",
        filename="smtnet-300w-small-wild.safetensors",
        sha256="6c60da539fdd59dc6e4c5dbcc6ab11366c38b1908572eea899217403e94b17a5",
        num_landmarks=68,
        description="SMT-Net small, 68 points, small v5 fine-tuned 92 min on 300-W training faces + eos-synthesized "
                    "large-pose views (1:4) with degradation augmentation: large-pose validation NME 14.7 -> 8.0 %, "
                    "300-W common NME 3.48% (v5: 3.37). Opt-in for turned heads. Non-commercial research only "
                    "(300-W and Surrey Face Model licences). Ships inside the package.",
    ),
    "smtnet-300w-tiny": PretrainedWeights(
        name="smtnet-300w-tiny",
        filename="smtnet-300w-tiny.safetensors",
        sha256="4c9d4969157569d6fd2ee36a295601ae087a3840cad07a0b8ff98958b75dff98",
        num_landmarks=68,
        description="SMT-Net tiny (64/128, 2.85 GFLOPs), 68 points, v7: 30 % of the way from v6 to v6 fine-tuned 85 min "
                    "on real faces + every eos-synthesized view turned 40-80 degrees, with heavy degradations, "
                    "BatchNorm statistics frozen, smtnet-300w-small v8 teaching the real faces (crop factor 1.2); "
                    "300-W common NME 3.71% (gt boxes), validation: turned faces 8.43 -> 8.30, 60-80 degrees "
                    "13.40 -> 13.18, all 6.39 -> 6.33. "
                    "Non-commercial research only (300-W and Surrey Face Model licences). Ships inside the package.",
    ),
}


class PretrainedWeightsUnavailable(FileNotFoundError):
    """A registered name whose file is neither installed nor downloadable right now."""


def search_dirs() -> list[Path]:
    """Local folders searched for a registered file, in order (the Hub cache comes after them)."""
    dirs = []
    env = os.environ.get("FACELANDMARKS_SMT_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs.append(PACKAGE_WEIGHTS_DIR)
    dirs.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facelandmarks_smt")
    return dirs


def available() -> list[str]:
    """Names of registered weights that load without a download (local folders or the Hub cache)."""
    return [name for name, entry in REGISTRY.items()
            if _find_local(entry.filename) is not None or _find_in_hub_cache(entry) is not None]


def _find_local(filename: str) -> Path | None:
    for d in search_dirs():
        p = d / filename
        if p.is_file():
            return p
    return None


def _find_in_hub_cache(entry: PretrainedWeights) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(entry.repo_id, entry.filename, revision=entry.revision)
    return Path(found) if isinstance(found, str) else None


def _unknown_name_error(name: str) -> ValueError:
    known = sorted(REGISTRY)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(
        f"unknown pretrained weights name {name!r}.{hint} Known names: {', '.join(known) or 'none'}. "
        "To load your own file, pass its path (ending in .safetensors).")


def download(name: str) -> Path:
    """Fetch a registered file from the Hugging Face Hub (or the Hub cache) and check its sha256."""
    if name not in REGISTRY:
        raise _unknown_name_error(name)
    entry = REGISTRY[name]
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{entry.filename} from Hugging Face Hub repo {entry.repo_id!r} (revision {entry.revision!r})"
    fix = (f"Fix: download it once with network access (it is cached), or put {entry.filename} in "
           f"$FACELANDMARKS_SMT_WEIGHTS or {search_dirs()[-1]}, or pass the file's path instead of the name.")
    try:
        path = Path(hf_hub_download(entry.repo_id, entry.filename, revision=entry.revision,
                                    library_name="facelandmarks_smt"))
    except LocalEntryNotFoundError as e:
        why = ("HF_HUB_OFFLINE is set (unset it for the one download)" if constants.HF_HUB_OFFLINE
               else "the Hub could not be reached (no network?)")
        raise PretrainedWeightsUnavailable(
            f"pretrained weights {name!r} are not installed and cannot be downloaded: {why}; needed {where}, "
            f"which is not in the Hub cache either. {fix}") from e
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise PretrainedWeightsUnavailable(
            f"pretrained weights {name!r}: the Hub has no {where} ({type(e).__name__}). This version of "
            f"facelandmarks_smt expects it there; upgrade facelandmarks_smt, or get the file another way. "
            f"{fix}") from e
    except HfHubHTTPError as e:
        raise PretrainedWeightsUnavailable(
            f"pretrained weights {name!r}: downloading {where} failed: {e}. {fix}") from e
    actual = sha256_file(path)
    if actual != entry.sha256.lower():
        raise ValueError(
            f"pretrained weights {name!r}: the downloaded {where} has sha256 {actual}, but this version of "
            f"facelandmarks_smt expects {entry.sha256}; it was not loaded. The file on the Hub differs from "
            f"the published one (or the cached copy {path} is damaged): delete that copy and retry, or upgrade "
            "facelandmarks_smt.")
    return path


def resolve(name_or_path: str | os.PathLike) -> tuple[Path, str | None]:
    """``(path, expected sha256 or None)`` for a weights file path or a registered name.

    A registered name that is not installed locally is downloaded (see `download`).
    """
    p = Path(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or "/" in str(name_or_path) or os.sep in str(name_or_path)
    if p.suffix == ".safetensors" or p.exists() or looks_like_path:
        if not p.is_file():
            raise FileNotFoundError(f"weights file not found: {p}")
        return p, None
    name = str(name_or_path)
    if name not in REGISTRY:
        raise _unknown_name_error(name)
    entry = REGISTRY[name]
    found = _find_local(entry.filename)
    if found is None:
        found = download(name)
    return found, entry.sha256
