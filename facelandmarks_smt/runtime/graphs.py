"""The ONNX graphs a weights file runs as: the cached int8 graph of `Detector(precision="int8")` and
the export of a weights file to a graph of the user's choosing (the ``export`` command).

An int8 graph is cached under a name made of the weights' sha256, the config name, the opset, the
export version and a digest of the calibration recipe, which holds the calibration folders *and a
hash of their content* (`datasets.calibration.content_sha256`) plus the quantisation settings: a
changed folder, another export or other weights never reuse a graph. Without ``calibration`` only a
graph whose metadata names these exact weights and this export version is taken, and only when it
is the single one on disk (several calibrations of the same weights are ambiguous: pass
``calibration`` to choose).

Shipped int8 ranges: a weights file may come with ``<name>.int8-ranges.json`` (`write_int8_ranges`:
the calibration ranges of every quantised tensor, collected on crops of the 300-W *training*
folders, plus the recipe that made them; no image data). Then ``precision="int8"`` without
``calibration`` builds its graph from those ranges on any machine (`shipped_int8_ranges`), the same
graph a calibration on those folders would give, and ``"auto"`` may choose int8 (`backends.auto_path`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import hub
from ..datasets.calibration import calibration_dataset, content_sha256
from ..models import SMTNet
from ..weights_io import load_model, sha256_file
from .export import EXPORT_VERSION, OPSET, cache_dir, export_onnx
from .quantize import (DEFAULT_NUM_CROPS, calibration_crops, collect_ranges, quant_settings, quantize_from_ranges,
                       quantize_int8, recipe_key)

WEIGHTS_SHA_KEY = "facelandmarks_smt.weights_sha256"
EXPORT_VERSION_KEY = "facelandmarks_smt.export_version"
#: File name ending of shipped int8 ranges, next to their weights file.
RANGES_SUFFIX = ".int8-ranges.json"
RANGES_FORMAT = 1


def int8_stem(model: SMTNet, weights_sha256: str) -> str:
    """The cache-name prefix of the int8 graphs of these weights under this export version."""
    return f"{weights_sha256[:32]}-{model.config.name}-int8-opset{OPSET}-v{EXPORT_VERSION}"


def int8_recipe(calibration) -> tuple[dict, object]:
    """``(recipe of the cache key, crops or dataset)`` of a ``calibration`` argument."""
    if isinstance(calibration, np.ndarray):
        recipe = {"crops_sha256": hashlib.sha256(np.ascontiguousarray(calibration).tobytes()).hexdigest(),
                  "num_crops": len(calibration), **quant_settings()}
        return recipe, calibration
    data, folders = calibration_dataset(calibration)
    recipe = {"folders": folders, "content_sha256": content_sha256(data, DEFAULT_NUM_CROPS),
              "num_crops": DEFAULT_NUM_CROPS, **quant_settings()}
    return recipe, data


def _graph_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # a damaged cache entry is no candidate
        return {}
    return {p.key: p.value for p in proto.metadata_props}


def find_cached_int8(model: SMTNet, weights_sha256: str, directory: str | os.PathLike | None = None) -> Path | None:
    """The one cached int8 graph made from these weights under this export version, or None.
    Raises ValueError when several calibrations of these weights are cached."""
    directory = Path(directory) if directory is not None else cache_dir()
    found = [p for p in sorted(directory.glob(f"{int8_stem(model, weights_sha256)}-*.onnx"))
             if (meta := _graph_metadata(p)).get(WEIGHTS_SHA_KEY) == weights_sha256
             and meta.get(EXPORT_VERSION_KEY) == str(EXPORT_VERSION)]
    if len(found) > 1:
        raise ValueError(f"{len(found)} int8 graphs of these weights, calibrated differently, are cached in "
                         f"{directory} ({', '.join(p.name for p in found)}): pass calibration=... to choose one")
    return found[0] if found else None


def int8_graph(model: SMTNet, weights_sha256: str | None, calibration=None, threads: int | None = None) -> Path | bytes:
    """The int8 graph of ``model``: from the cache, or calibrated on ``calibration`` (folders of
    annotated training faces, a `LandmarkDataset`, or uint8 NHWC crops) and cached under the
    weights' sha256 (a model without one is quantised in memory and never cached). ``threads``:
    intra-op threads of the calibration session (default: onnxruntime's)."""
    if calibration is None and weights_sha256 and (shipped := shipped_int8_ranges(weights_sha256)) is not None:
        return _int8_from_ranges(model, weights_sha256, shipped)
    if calibration is None:
        found = find_cached_int8(model, weights_sha256) if weights_sha256 else None
        if found is not None:
            return found
        raise ValueError(
            "precision='int8' needs a calibrated graph: pass calibration=[folders of annotated training faces] "
            "(or uint8 crops) once, or build one with `facelandmarks-smt export --int8 --calibration DIR ...`; "
            + (f"none is cached in {cache_dir()} for these weights and this export version" if weights_sha256 else
               "a model without a weights file is never cached"))
    recipe, source = int8_recipe(calibration)
    path = cache_dir() / f"{int8_stem(model, weights_sha256)}-{recipe_key(recipe)}.onnx" if weights_sha256 else None
    if path is not None and path.is_file():
        return path
    if isinstance(source, np.ndarray):
        crops = source
    else:
        crops, made = calibration_crops(source, model.config, DEFAULT_NUM_CROPS)
        recipe = {**made, "folders": recipe["folders"]}
    with tempfile.TemporaryDirectory() as tmp:
        meta = {WEIGHTS_SHA_KEY: weights_sha256} if weights_sha256 else None
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", metadata=meta)
        out = quantize_int8(fp32, path if path is not None else Path(tmp) / "int8.onnx", crops, recipe, threads=threads)
        return out if path is not None else out.read_bytes()


def shipped_int8_ranges(weights_sha256: str) -> Path | None:
    """The ``*.int8-ranges.json`` for weights with this sha256 in the weights folders (`hub.search_dirs`), or None."""
    for d in hub.search_dirs():
        for path in sorted(Path(d).glob(f"*{RANGES_SUFFIX}")) if Path(d).is_dir() else ():
            try:
                if json.loads(path.read_text()).get("weights_sha256") == weights_sha256:
                    return path
            except (OSError, ValueError):  # unreadable: not a candidate
                continue
    return None


def _int8_from_ranges(model: SMTNet, weights_sha256: str, ranges_file: Path) -> Path:
    """The cached int8 graph built from shipped ranges (built now when missing)."""
    data = json.loads(ranges_file.read_text())
    if data.get("format") != RANGES_FORMAT or not isinstance(data.get("ranges"), dict):
        raise ValueError(f"{ranges_file} is not an int8 ranges file of format {RANGES_FORMAT}")
    recipe = {"ranges_file": ranges_file.name, "ranges_sha256": sha256_file(ranges_file),
              "calibrated_on": data.get("recipe"), **quant_settings()}
    path = cache_dir() / f"{int8_stem(model, weights_sha256)}-{recipe_key(recipe)}.onnx"
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", metadata={WEIGHTS_SHA_KEY: weights_sha256})
        try:
            return quantize_from_ranges(fp32, path, data["ranges"], recipe)
        except ValueError as e:
            raise ValueError(f"{ranges_file}: {e}") from e


def write_int8_ranges(weights: str | os.PathLike, calibration, out: str | os.PathLike | None = None,
                      threads: int | None = None) -> Path:
    """Collect the int8 calibration ranges of a weights file on crops of ``calibration`` (folders of
    annotated *training* faces) and write them as ``<weights>.int8-ranges.json`` (or ``out``), to
    ship beside the weights (see the module docstring)."""
    import torch

    path, expected = hub.resolve(weights)
    model, _ = load_model(path, sha256=expected)
    sha = sha256_file(path)
    crops, recipe = calibration_crops(calibration, model.config, DEFAULT_NUM_CROPS)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", metadata={WEIGHTS_SHA_KEY: sha})
        ranges = collect_ranges(fp32, crops, threads)
    out = Path(out) if out is not None else path.with_name(path.name.removesuffix(".safetensors") + RANGES_SUFFIX)
    data = {"format": RANGES_FORMAT, "weights": path.name, "weights_sha256": sha, "export_version": EXPORT_VERSION,
            "opset": OPSET, "torch": torch.__version__, "recipe": recipe,
            "ranges": {k: ranges[k] for k in sorted(ranges)}}
    out.write_text(json.dumps(data, indent=1) + "\n")
    return out


def export_weights(weights: str | os.PathLike, out: str | os.PathLike, opset: int = OPSET, int8: bool = False,
                   calibration: list[str] | None = None, num_calibration: int | None = None) -> dict:
    """Export a weights file (or a registered pretrained name) to ``out``; with ``int8`` the
    graph is statically quantised on crops of the ``calibration`` folders (see `quantize`).
    Returns a summary dict (path, sha256, opset, precision)."""
    path, expected = hub.resolve(weights)
    model, _ = load_model(path, sha256=expected)
    sha = sha256_file(path)
    meta = {WEIGHTS_SHA_KEY: sha}
    out = Path(out)
    if int8:
        if not calibration:
            raise ValueError("int8 export needs --calibration folders of annotated training faces")
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", opset=opset, metadata=meta)
            crops, recipe = calibration_crops(calibration, model.config, num_calibration or DEFAULT_NUM_CROPS)
            quantize_int8(fp32, out, crops, recipe)
    else:
        export_onnx(model, out, opset=opset, metadata=meta)
    return {"out": str(out), "sha256": sha256_file(out), "opset": opset, "precision": "int8" if int8 else "fp32",
            "weights": str(path), "weights_sha256": sha}


#: File name endings of a shipped OpenVINO int8 model (`training.openvino_int8` builds it): the IR
#: (``.xml`` + ``.bin``) and its record (weights sha256, file sha256s, recipe, validation NME).
OPENVINO_INT8_SUFFIX = ".openvino-int8"


def shipped_openvino_int8(weights_sha256: str) -> Path | None:
    """The ``.xml`` of a shipped OpenVINO int8 model made from the weights with this sha256 (found by
    its ``*.openvino-int8.json`` record in the weights folders, `hub.search_dirs`), or None. Its
    ``.xml`` and ``.bin`` must match the sha256s in the record: a changed or damaged file raises
    ValueError instead of running a model other than the one measured."""
    for d in hub.search_dirs():
        for record in sorted(Path(d).glob(f"*{OPENVINO_INT8_SUFFIX}.json")) if Path(d).is_dir() else ():
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):  # unreadable: not a candidate
                continue
            if data.get("weights_sha256") != weights_sha256:
                continue
            stem = record.name[:-len(".json")]
            xml, bin_ = record.with_name(stem + ".xml"), record.with_name(stem + ".bin")
            for path, key in ((xml, "xml_sha256"), (bin_, "bin_sha256")):
                if not path.is_file():
                    raise ValueError(f"{record} names an OpenVINO int8 model, but {path} is missing")
                if sha256_file(path) != data.get(key):
                    raise ValueError(f"{path} does not match the sha256 in {record}: a changed or damaged file "
                                     "(rebuild it with `python -m facelandmarks_smt.training quantize-openvino`)")
            return xml
    return None
