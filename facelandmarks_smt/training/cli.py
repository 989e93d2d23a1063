"""Command line of the training subpackage: ``train`` and ``evaluate``.

    python -m facelandmarks_smt.training train --data DIR [DIR ...] --config small --out runs/s --max-minutes 60
    python -m facelandmarks_smt.training train ... --resume
    python -m facelandmarks_smt.training evaluate --weights runs/s/best.safetensors --data DIR --out eval/ --boxes gt
    torchrun --nproc_per_node=4 -m facelandmarks_smt.training train ...   (DistributedDataParallel)
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cli.common import HelpFormatter


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise SystemExit(f"--set expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m facelandmarks_smt.training", description=__doc__,
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train SMT-Net on annotated faces",
                       formatter_class=HelpFormatter)
    t.add_argument("--data", nargs="+", required=True,
                   help="training data: folders of images + .pts (300-W layout), .csv, .xml (dlib) or .json files")
    t.add_argument("--val-data", nargs="+",
                   help="validation data (same formats); default: the config's val_fraction (0.1; change it "
                        "with --set val_fraction=0.2) of --data, split with the config's seed")
    t.add_argument("--extra-data", nargs="+", default=[],
                   help="more training-only data, added after the validation split is taken from --data "
                        "(so adding a source never changes which faces validate)")
    t.add_argument("--extra-val-data", nargs="+", default=[],
                   help="more validation-only data (e.g. synthesized poses, degraded copies of the validation "
                        "faces), added after the split; each source is also scored alone in log.jsonl")
    t.add_argument("--config", default=None,
                   help="preset: paper (the paper's network and 240-epoch schedule, for GPUs), small (the shipped "
                        "recipe, crop 1.2), tiny, finetune (gentle fine-tuning of trained weights); or a "
                        "YAML/TOML/JSON file (may name a preset in 'base'). Default: finetune with --init (model "
                        "settings from the init weights), else paper")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config fields, JSON values, e.g. lr=0.001 sigmas=[3,2] model.width=64")
    t.add_argument("--out", required=True, help="output folder: best.safetensors, last.pt, log.jsonl, ...")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget; the run stops cleanly with a checkpoint and scored weights")
    t.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps (this call)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt with the same config")
    t.add_argument("--init", metavar="WEIGHTS",
                   help="start from these weights (.safetensors or a pretrained name) with a fresh optimiser "
                        "and this run's lr and sigma schedule; the model config must match")
    t.add_argument("--teacher", metavar="WEIGHTS",
                   help="distil from these trained weights (.safetensors or a pretrained name): its heatmaps "
                        "become soft targets with weight distill_weight (default 0.5); same crop settings needed; "
                        "--set distill_sources=data limits them to the --data faces (not --extra-data); "
                        "--set distill_input=clean shows the teacher the crops without blur, colour, occlusion "
                        "and degradations")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    t.add_argument("--cache", help="folder to keep the decoded face cache in (reused when it exists)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bars")

    e = sub.add_parser("evaluate", help="score weights on annotated faces (NME, NMDE, FR, AUC, CED plot)",
                       formatter_class=HelpFormatter)
    e.add_argument("--weights", required=True, help="a .safetensors weights file or a registered pretrained name")
    e.add_argument("--data", nargs="+", required=True, help="test data folders/files (formats as for train)")
    e.add_argument("--out", required=True, help="output folder for report.json and ced.png")
    e.add_argument("--boxes", choices=["gt", "detector"], default="gt",
                   help="gt: tight ground-truth landmark boxes (as the paper); detector: the bundled face detector")
    e.add_argument("--norm", choices=["inter-ocular", "box"], default=None,
                   help="error normalisation (default: inter-ocular for 68 points, box otherwise)")
    e.add_argument("--baseline", choices=["dlib"], default=None,
                   help="also score dlib's 68-point predictor on the same faces (pip install dlib-bin face-recognition-models)")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    e.add_argument("--flip-test", action="store_true",
                   help="average each face with its mirror image (Detector(flip_test=True), 2x the work)")
    e.add_argument("--limit", type=int, default=None, help="score only the first N faces")
    e.add_argument("--title", default=None, help="title of the report and plot")
    e.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    x = sub.add_parser("export", help="write release weights: fp16 or fp32, licence note, sha256",
                       formatter_class=HelpFormatter)
    x.add_argument("--weights", required=True, help="a trained .safetensors file (e.g. OUT/best.safetensors), or a "
                   "run's checkpoint OUT/last.pt (its EMA weights when it keeps them: what the run validated last)")
    x.add_argument("--out", required=True, help="the release file to write")
    x.add_argument("--half", action="store_true", help="store floating tensors as fp16 (half the size)")
    x.add_argument("--name", default=None, help="model name stored in the config")
    x.add_argument("--licence", default=None, help="training-data licence stored in the config")
    w = sub.add_parser("interpolate", help="weights between two fine-tunings of one network: (1 - alpha) * "
                       "start + alpha * tuned (WiSE-FT)", formatter_class=HelpFormatter)
    w.add_argument("--start", required=True, help="weights the other was fine-tuned from (.safetensors or a name)")
    w.add_argument("--tuned", required=True, nargs="+",
                   help="the fine-tuned weights (.safetensors or a name); several fine-tunings of --start are "
                   "averaged first (a uniform model soup)")
    w.add_argument("--alpha", type=float, required=True, help="0 gives --start, 1 gives --tuned")
    w.add_argument("--out", required=True, help="the weights file to write")
    w.add_argument("--half", action="store_true", help="store floating tensors as fp16")
    y = sub.add_parser("synthesize-poses", help="turn faces to large head poses with a 3D face model (eos)",
                       formatter_class=HelpFormatter)
    y.add_argument("--data", nargs="+", required=True, help="68-point data (formats as for train)")
    y.add_argument("--out", required=True, help="folder for the synthesized .jpg + .pts and synthesis.jsonl")
    y.add_argument("--views", type=int, default=3, help="turned copies per face")
    y.add_argument("--max-yaw", type=float, default=90.0, help="largest |yaw| of a turned face, degrees")
    y.add_argument("--min-yaw", type=float, default=20.0, help="smallest |yaw| of a turned face, degrees")
    y.add_argument("--max-pitch", type=float, default=15.0, help="pitch turn drawn in [-max, max], degrees")
    y.add_argument("--max-residual", type=float, default=0.03,
                   help="skip faces whose 3D fit misses the labels by more than this fraction of the face box")
    y.add_argument("--seed", type=int, default=0, help="seed of the pose draws (per face, order-independent)")
    y.add_argument("--only", metavar="JSON[:KEY]",
                   help="only the faces named in this list, e.g. a run's data_lists.json:train (its training split)")
    y.add_argument("--eos-model", default=None,
                   help="folder with eos's Surrey Face Model files (default: $FACELANDMARKS_SMT_EOS_MODEL)")
    y.add_argument("--shard", default="0/1", metavar="K/N", help="this process takes faces K, K+N, ... (parallel runs)")
    y.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    q = sub.add_parser("quantize-openvino", help="an OpenVINO int8 model of trained weights with NNCF, checked on the "
                                                 "validation split, to ship beside them (backend='openvino', "
                                                 "precision='int8' runs it)", formatter_class=HelpFormatter)
    q.add_argument("--weights", required=True, help=".safetensors or a pretrained name")
    q.add_argument("--data", nargs="+", required=True,
                   help="the folders the weights were trained on, in train's order (calibration on the training "
                        "part of train's split, accuracy on its validation part)")
    q.add_argument("--out", required=True, help="writes OUT.xml, OUT.bin and OUT.json (e.g. "
                                                "weights/smtnet-300w-tiny.openvino-int8)")
    q.add_argument("--max-drop", type=float, default=0.02,
                   help="largest validation NME increase over fp32 (NME points); NNCF's accuracy control puts layers "
                        "back in fp32 until it holds")
    q.add_argument("--keep-fp32", nargs="+", default=[], metavar="OP", help="OpenVINO op names left fp32 from the start")
    q.add_argument("--keep-fp32-from", metavar="JSON", help="the keep_fp32 list of an earlier record (.json)")
    q.add_argument("--num-calibration", type=int, default=256, help="calibration crops")
    q.add_argument("--extra-val-data", nargs="+", default=[], metavar="DIR",
                   help="more validation faces (e.g. turned and degraded copies of the held-out faces)")
    q.add_argument("--ranking-subset", type=int, default=None, help="faces NNCF ranks the layers on (default: all)")
    q.add_argument("--preset", choices=("performance", "mixed"), default="performance",
                   help="NNCF's preset: symmetric activations (performance) or asymmetric ones (mixed)")
    q.add_argument("--bias-correction", choices=("fast", "full"), default="fast",
                   help="NNCF's bias correction: fast, or full (slower, per-layer statistics)")
    v = sub.add_parser("select-views", help="link the synthesized views up to a final yaw (and chosen view numbers) "
                                            "into a folder for training or validation", formatter_class=HelpFormatter)
    v.add_argument("--synth", required=True, help="a synthesize-poses --out folder")
    v.add_argument("--out", required=True, help="folder for the links (.jpg + .pts)")
    v.add_argument("--max-final-yaw", type=float, default=80.0,
                   help="keep views whose head ends at most this many degrees from frontal")
    v.add_argument("--min-final-yaw", type=float, default=0.0,
                   help="keep views whose head ends at least this many degrees from frontal (e.g. 60 to "
                        "oversample the hardest turns)")
    v.add_argument("--views", type=int, nargs="+", default=None, metavar="K",
                   help="only these view numbers (0-based, the _vK in the names), e.g. 0 for one view a face")
    g = sub.add_parser("degrade", help="write degraded copies of faces (blur, low resolution, noise, dark, "
                                       "occlusion, ...) for a validation set scored per kind",
                       formatter_class=HelpFormatter)
    g.add_argument("--data", nargs="+", required=True, help="annotated faces (formats as for train)")
    g.add_argument("--out", required=True, help="folder for the degraded .jpg + .pts (names end in _KIND)")
    g.add_argument("--kinds", default=None, help="comma-separated subset of: blur, motion, lowres, noise, jpeg, dark, "
                                                 "occlusion (default: all)")
    g.add_argument("--per-face", type=int, default=None, help="draw this many kinds per face (default: every kind)")
    g.add_argument("--only", metavar="JSON[:KEY]", help="only the faces named in this list (as synthesize-poses)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--severity", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="draw each copy's severity uniformly in [LOW, HIGH] (0-2; default 0 1, the original scale)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


def cmd_select_views(args: argparse.Namespace) -> int:
    from .synthesis import select_views

    if not 0 <= args.max_final_yaw <= 180:
        raise ValueError(f"--max-final-yaw must be in [0, 180], got {args.max_final_yaw}")
    if not 0 <= args.min_final_yaw <= args.max_final_yaw:
        raise ValueError(f"--min-final-yaw must be in [0, --max-final-yaw={args.max_final_yaw}], "
                         f"got {args.min_final_yaw}")
    n = select_views(args.synth, args.out, max_final_yaw=args.max_final_yaw, views=args.views,
                     min_final_yaw=args.min_final_yaw)
    print(json.dumps({"out": args.out, "views": n}))
    return 0


def cmd_quantize_openvino(args: argparse.Namespace) -> int:
    from .openvino_int8 import build_openvino_int8

    keep = list(args.keep_fp32)
    if args.keep_fp32_from:
        keep += json.loads(Path(args.keep_fp32_from).read_text())["keep_fp32"]
    record = build_openvino_int8(args.weights, args.data, args.out, max_drop=args.max_drop, keep_fp32=keep,
                                 num_calibration=args.num_calibration, extra_val_data=args.extra_val_data,
                                 ranking_subset=args.ranking_subset, preset=args.preset,
                                 bias_correction=args.bias_correction)
    print(json.dumps({k: record[k] for k in ("xml", "weights_sha256", "validation", "keep_fp32")}, indent=1))
    return 0


def cmd_degrade(args: argparse.Namespace) -> int:
    from .degrade import KINDS, degrade_folder

    kinds = tuple(k.strip() for k in args.kinds.split(",")) if args.kinds else KINDS
    if args.per_face is not None and not 1 <= args.per_face <= len(kinds):
        raise ValueError(f"--per-face must be in 1..{len(kinds)}")
    counts = degrade_folder(args.data, args.out, kinds, per_face=args.per_face, seed=args.seed,
                            severity=tuple(args.severity) if args.severity else None, only=_name_list(args.only) if args.only else None, progress=not args.no_progress)
    print(json.dumps(counts, indent=2))
    return 0


def _name_list(spec: str) -> list[str]:
    """Names from ``FILE.json`` (a list) or ``FILE.json:KEY`` (a list under KEY)."""
    from pathlib import Path

    path, _, key = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    d = json.loads(Path(path).read_text())
    d = d[key] if key else d
    if not isinstance(d, list) or not all(isinstance(n, str) for n in d):
        raise ValueError(f"--only {spec}: expected a list of face names")
    return d


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .synthesis import synthesize_folder

    k, _, n = args.shard.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        raise ValueError(f"--shard must look like K/N, got {args.shard!r}") from None
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"--shard K/N needs 0 <= K < N, got {args.shard!r}")
    if args.views < 1 or not 0 <= args.min_yaw <= args.max_yaw <= 180:
        raise ValueError("--views must be >= 1 and 0 <= --min-yaw <= --max-yaw <= 180")
    counts = synthesize_folder(args.data, args.out, views=args.views, max_yaw=args.max_yaw, min_yaw=args.min_yaw,
                               max_pitch=args.max_pitch, seed=args.seed, max_residual=args.max_residual,
                               eos_model_dir=args.eos_model, only=_name_list(args.only) if args.only else None,
                               progress=not args.no_progress, shard=shard)
    print(json.dumps(counts, indent=2))
    return 0


def checkpoint_weights(path: str | os.PathLike) -> tuple[Any, dict, dict]:
    """``(model config, state dict, metadata)`` of a training checkpoint (``OUT/last.pt``): the weights
    that run validates (the EMA average when the run keeps one, else the raw model), with the run's
    last validation record, so a run's last weights can be exported like ``best.safetensors``."""
    import torch

    from ..config import ModelConfig

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not a facelandmarks_smt training checkpoint (last.pt)")
    if ckpt.get("ema") is not None:
        state = {k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")}
        source = "ema"
    else:
        state, source = ckpt["model"], "model"
    history = ckpt.get("state", {}).get("history") or [{}]
    meta = {"from_checkpoint": str(path), "checkpoint_weights": source, "metrics": history[-1],
            "train_config": ckpt["config"], "step": ckpt.get("state", {}).get("step")}
    return ModelConfig.from_dict(ckpt["config"]["model"]), state, meta


def cmd_export(args: argparse.Namespace) -> int:
    from ..weights_io import check_state_dict, load_weights, save_weights

    if str(args.weights).endswith(".pt"):
        from ..models import SMTNet

        config, state, meta = checkpoint_weights(args.weights)
        check_state_dict(SMTNet(config), state, source=f"checkpoint {args.weights}")
    else:
        config, state, meta = load_weights(args.weights)
    changes = {k: v for k, v in (("name", args.name), ("training_data_licence", args.licence)) if v is not None}
    config = config.replace(**changes) if changes else config
    extra = {k: v for k, v in meta.items() if k not in ("format", "format_version", "config")}
    extra["exported_from"] = str(args.weights)
    extra["stored_dtype"] = "float16" if args.half else "float32"
    digest = save_weights(state, config, args.out, metadata=extra, half=args.half)
    print(json.dumps({"out": args.out, "sha256": digest, "half": args.half}, indent=2))
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from ..fileio import sha256_file
    from ..weights_io import save_weights
    from .interpolate import average_states, interpolate_state

    p0, c0, s0 = _load_float(args.start)
    tuned = [_load_float(t) for t in args.tuned]
    def architecture(c):
        return {k: v for k, v in c.to_dict().items() if k not in ("name", "training_data_licence")}

    for name, (_, c, _) in zip(args.tuned, tuned):
        if architecture(c0) != architecture(c):
            raise ValueError(f"{args.start} and {name} are different networks: their model configs differ")
    c1 = tuned[0][1]
    s1 = tuned[0][2] if len(tuned) == 1 else average_states([t[2] for t in tuned])
    one = len(tuned) == 1
    meta = {"interpolated": {"start": str(args.start), "start_sha256": sha256_file(p0),
                             "tuned": str(args.tuned[0]) if one else [str(t) for t in args.tuned],
                             "tuned_sha256": sha256_file(tuned[0][0]) if one else [sha256_file(t[0]) for t in tuned],
                             "alpha": args.alpha}}
    state = interpolate_state(s0, s1, args.alpha)
    digest = save_weights(state, c1, args.out, metadata=meta, half=args.half)
    print(json.dumps({"out": args.out, "sha256": digest, "alpha": args.alpha}, indent=2))
    return 0


def cache_key(dataset, model_cfg, margin: float) -> str:
    """Hash of everything that defines a cached face set: each face's files (path, size, mtime),
    its landmarks, and the crop settings, so other data never silently reuses an old cache."""
    import hashlib
    import os

    h = hashlib.sha256()
    h.update(json.dumps({"input_size": model_cfg.input_size, "crop_factor": model_cfg.crop_factor,
                         "margin": round(float(margin), 6), "n": len(dataset)}).encode())
    for (path, lm), meta in zip(dataset.items, dataset.metas):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "?"
        h.update(f"{path}|{stamp}|{meta.get('name', '')}|".encode())
        h.update(np.ascontiguousarray(lm, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _load_float(name_or_path: str):
    """``(path, config, float32 state dict)`` of a weights file or a registered pretrained name."""
    from .. import hub
    from ..weights_io import load_weights

    path, _ = hub.resolve(name_or_path)
    config, state, _ = load_weights(path)
    return path, config, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _init_weights(name_or_path: str, cfg, loaded=None) -> dict:
    """The float state dict of ``--init`` weights, checked to fit ``cfg.model`` (``loaded``: what
    `_load_float` already returned for them, so the file is read once)."""
    path, config, state = loaded or _load_float(name_or_path)
    arch = ("num_landmarks", "width", "inner_width", "num_stacks", "hourglass_depth", "coord_hidden",
            "input_size", "heatmap_stride")
    diff = [k for k in arch if getattr(config, k) != getattr(cfg.model, k)]
    if diff:
        raise ValueError(f"--init weights {path} do not fit the model config: "
                         + ", ".join(f"{k} {getattr(config, k)} vs {getattr(cfg.model, k)}" for k in diff))
    return state


def _teacher(name_or_path: str):
    """The frozen teacher model and its identity (path and sha256) for ``--teacher``."""
    from ..models import SMTNet
    from ..weights_io import sha256_file

    path, config, state = _load_float(name_or_path)
    model = SMTNet(config)
    model.load_state_dict(state)
    return model, f"{path} sha256:{sha256_file(path)}"


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..datasets import LandmarkDataset, load_datasets, split_dataset
    from .config import load_train_config
    from .trainer import Trainer

    t_start = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = _overrides(args.set)
    config_name = args.config or ("finetune" if args.init else "paper")
    cfg = load_train_config(config_name, overrides)
    if args.init and args.resume:
        raise ValueError("--init and --resume exclude each other (resume restores its own weights)")
    init = _load_float(args.init) if args.init else None
    if init and config_name == "finetune" and not any(k == "model" or k.startswith("model.") for k in overrides):
        # fine-tuning keeps the network it starts from: widths, crop factor, scheme
        import dataclasses

        cfg = dataclasses.replace(cfg, model=init[1])
    init_state = _init_weights(args.init, cfg, init) if init else None
    teacher, teacher_id = _teacher(args.teacher) if args.teacher else (None, None)
    if teacher is not None:
        from .trainer import check_teacher

        check_teacher(teacher.config, cfg.model)  # before minutes go into loading data
    data = load_datasets(args.data)
    if args.val_data:
        train, val = data, load_datasets(args.val_data)
    else:
        train, val = split_dataset(data, cfg.val_fraction, seed=cfg.seed)
    data_faces = len(train)  # the first training faces come from --data, the rest from --extra-data
    if args.extra_data:
        train = train + load_datasets(args.extra_data)
    val_parts = None
    if args.extra_val_data:
        from pathlib import Path

        val_parts = {"real": (0, len(val))}
        parts = [val]
        for src in args.extra_val_data:
            extra = load_datasets([src])
            start = sum(len(p) for p in parts)
            key = Path(src).name or str(src)
            while key in val_parts:
                key += "_"
            val_parts[key] = (start, start + len(extra))
            parts.append(extra)
        val = LandmarkDataset.concat(parts)
    names = {"train": [m["name"] for m in train.metas], "val": [m["name"] for m in val.metas],
             "train_sources": list(args.data) + list(args.extra_data),
             "val_sources": list(args.val_data or ["split of --data"]) + list(args.extra_val_data)}
    if val_parts:
        names["val_parts"] = {k: list(v) for k, v in val_parts.items()}
    train_cache, val_cache = train, val
    if args.cache:
        from pathlib import Path

        from .cache import AugmentedBatches, FaceCache

        root = Path(args.cache)
        need = AugmentedBatches.cache_margin(cfg.model, cfg.augment)
        tdir = root / f"train_{cache_key(train, cfg.model, need)}"
        vdir = root / f"val_{cache_key(val, cfg.model, 1.0)}"
        train_cache = FaceCache.load(tdir) if (tdir / "info.json").is_file() else \
            FaceCache.build(train, cfg.model, margin=need, path=tdir, progress=not args.no_progress)
        val_cache = FaceCache.load(vdir) if (vdir / "info.json").is_file() else \
            FaceCache.build(val, cfg.model, margin=1.0, path=vdir, progress=not args.no_progress)
    if len(val) < 20:
        print(f"warning: the validation split has only {len(val)} faces: model selection on it is noise; "
              "give more data, a larger val_fraction or --val-data", file=sys.stderr)
    if args.init:
        names["init"] = str(args.init)
    if teacher_id:
        names["teacher"] = teacher_id
    trainer = Trainer(cfg, train_cache, val_cache, args.out, device=args.device, data_lists=names,
                      progress=not args.no_progress, init_weights=init_state,
                      teacher=teacher, teacher_id=teacher_id, val_parts=val_parts,
                      data_faces=data_faces)
    max_minutes = args.max_minutes
    if max_minutes is not None and not args.resume:  # data loading and caching count against the budget
        max_minutes = max(0.0, max_minutes - (time.monotonic() - t_start) / 60)
    try:
        summary = trainer.run(max_minutes=max_minutes, resume=args.resume, max_steps=args.max_steps)
    finally:
        trainer.close()
    if trainer.dist.is_main:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..datasets import load_datasets
    from ..detector import Detector
    from ..schemes import get_scheme
    from .evaluate import DlibBaseline, evaluate_detector
    from .metrics import error_normalisation

    # torch fp32, not the machine's "auto" path: evaluation numbers must not depend on the CPU they ran on
    det = Detector.from_pretrained(args.weights, device=args.device, flip_test=args.flip_test, backend="torch",
                                   precision="fp32")
    data = load_datasets(args.data)
    try:
        scheme = get_scheme(det.scheme)
    except ValueError:
        scheme = None
    default_norm = error_normalisation(det.num_landmarks, scheme)  # the choice validation makes too
    norm = args.norm or default_norm["norm"]
    eyes = default_norm.get("eye_indices") if norm == "inter-ocular" else None
    baselines = None
    if args.baseline == "dlib":
        from pathlib import Path

        import numpy as np

        dlib_report = evaluate_detector(DlibBaseline(), data, boxes=args.boxes, out_dir=Path(args.out) / "dlib",
                                        title="dlib 68-point predictor", norm=norm, eye_indices=eyes, limit=args.limit,
                                        progress=not args.no_progress)
        baselines = {"dlib": np.array([e for e in dlib_report["errors"] if e is not None], dtype=float)}
    report = evaluate_detector(det, data, boxes=args.boxes, out_dir=args.out, title=args.title or str(args.weights),
                               norm=norm, eye_indices=eyes, limit=args.limit, progress=not args.no_progress,
                               extra={"weights": str(args.weights), "data": list(args.data)}, baselines=baselines)
    print(json.dumps({"metrics": report["metrics"], "faces": report.get("faces"), "out": args.out}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "interpolate":
            return cmd_interpolate(args)
        if args.command == "synthesize-poses":
            return cmd_synthesize(args)
        if args.command == "degrade":
            return cmd_degrade(args)
        if args.command == "select-views":
            return cmd_select_views(args)
        if args.command == "quantize-openvino":
            return cmd_quantize_openvino(args)
        return cmd_evaluate(args)
    except (ValueError, FileNotFoundError, TypeError, ImportError) as e:  # bad data or arguments: one clear line
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
