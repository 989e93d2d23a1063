"""The SMT-Net training loop: time-budgeted, resumable, single-process or DistributedDataParallel.

One `Trainer.run` call trains until the schedule ends, ``max_minutes`` pass or ``max_steps``
steps are done, and always leaves ``OUT/last.pt`` (full state, for ``resume``),
``OUT/best.safetensors`` (best validation NME, loadable by `Detector`, with config, metrics, data
lists and git commit inside), ``OUT/log.jsonl`` (one JSON line per validation), ``OUT/config.json``,
``OUT/data_lists.json`` and ``OUT/curve.png``.

Determinism: the batch stream depends only on (seed, epoch, position), the learning rate only on
(epoch, step), so stopping after N steps and resuming reproduces the straight run exactly on the
same machine and precision.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..codec import crop_to_heatmap, decode_heatmaps, heatmap_to_crop
from ..fileio import atomic_write
from ..geometry import normalise_crops
from ..models import SMTNet
from ..runtime.device import cpu_has_native_bf16 as cpu_has_bf16  # one CPU check for training and inference
from ..runtime.device import cv2_threads, resolve_device
from ..schemes import LandmarkScheme, get_scheme
from ..weights_io import save_weights
from .augment import AugmentConfig
from .cache import AugmentedBatches, FaceCache
from .config import TrainConfig
from .freezing import batchnorm_layers, early_stage_modules, freeze, keep_frozen_eval
from .losses import coord_loss, get_heatmap_loss
from .metrics import error_normalisation, normalised_errors
from .schedule import num_stages, stack_sigmas, stage_end_epoch, stage_time_limit
from .targets import gaussian_heatmaps, teacher_heatmaps

# What a teacher must share with the student for its heatmaps to be targets of the same pixels.
TEACHER_MUST_MATCH = ("num_landmarks", "input_size", "heatmap_stride", "crop_factor", "mean", "std", "scheme")


def check_teacher(teacher_config, student_config) -> None:
    """Raise if the teacher's heatmaps do not describe the student's crops pixel for pixel."""
    diff = [k for k in TEACHER_MUST_MATCH if getattr(teacher_config, k) != getattr(student_config, k)]
    if diff:
        raise ValueError("the teacher does not fit the student: " + ", ".join(
            f"{k} {getattr(teacher_config, k)} (teacher) vs {getattr(student_config, k)} (student)" for k in diff))


def training_scheme(model_cfg) -> LandmarkScheme | None:
    """The landmark scheme a model config trains: a registered scheme with as many points, or None
    for ``scheme="none"`` (no mirror permutation, box-normalised errors). An unknown name or a
    scheme of another size is an error, never a silent None."""
    if str(model_cfg.scheme).strip().lower() in ("none", ""):
        return None
    scheme = get_scheme(model_cfg.scheme)  # ValueError naming the known schemes
    if scheme.num_landmarks != model_cfg.num_landmarks:
        raise ValueError(f"scheme {scheme.name!r} has {scheme.num_landmarks} points but the model predicts "
                         f"{model_cfg.num_landmarks}; register a LandmarkScheme for your points "
                         "(schemes.register_scheme) or set model.scheme='none'")
    return scheme


def git_commit() -> str:
    """The git commit of the code that trained (``+dirty`` when uncommitted changes exist)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast is for CUDA; use bf16 or fp32 on CPU")
    return precision


class DistributedContext:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        self._initialised_here = False

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            self._initialised_here = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any_flag(self, flag: bool) -> bool:
        """True on every rank if any rank raised the flag (so all ranks stop together)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def close(self) -> None:
        if self._initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def ema_warmup_avg_fn(decay: float):
    """EMA update for ``AveragedModel`` whose decay ramps up: ``min(decay, (1 + n) / (10 + n))``.

    ``n`` is the number of updates averaged so far; the early average follows the model closely
    instead of keeping most of the random initialisation for thousands of steps.
    """

    @torch.no_grad()
    def update(ema_params, cur_params, num_averaged):
        n = float(num_averaged)
        d = min(float(decay), (1.0 + n) / (10.0 + n))
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, cur_params, 1.0 - d)
        else:  # integer buffers (BatchNorm's counter), as torch's own EMA does
            for e, c in zip(ema_params, cur_params):
                e.copy_(e * d + c * (1.0 - d))

    return update


class Trainer:
    """Trains an `SMTNet` on a training and a validation dataset (or prebuilt `FaceCache`s).

    Args:
        cfg: the `TrainConfig`.
        train_data, val_data: datasets yielding ``(image, landmarks, meta)`` or `FaceCache`s.
        out_dir: where every artefact goes.
        device: "cpu", "cuda", "cuda:N" or "auto" (under torchrun, CUDA rank r uses cuda:LOCAL_RANK).
        data_lists: names of the training/validation faces, recorded beside the weights.
        progress: tqdm bars.
        init_weights: optional state dict to start from (fine-tuning).
        teacher: optional trained `SMTNet` to distil from (its last stack's heatmaps become soft
            targets, weighted by ``cfg.distill_weight``); frozen, run without gradients.
        teacher_id: what the teacher is (path and sha256), recorded and checked on resume.
        val_parts: named index ranges of the validation set, each also scored alone.
        data_faces: how many of the first training faces come from ``--data`` (the rest from
            ``--extra-data``); with ``cfg.distill_sources == "data"`` only those get the teacher's targets.
    """

    def __init__(self, cfg: TrainConfig, train_data, val_data, out_dir: str | os.PathLike, device: str = "auto",
                 data_lists: dict[str, list[str]] | None = None, progress: bool = True,
                 init_weights: dict[str, torch.Tensor] | None = None, teacher: torch.nn.Module | None = None,
                 teacher_id: str | None = None, val_parts: dict[str, tuple[int, int]] | None = None,
                 data_faces: int | None = None) -> None:
        self.cfg = cfg
        # named index ranges of the validation set, each also scored alone (e.g. real faces,
        # synthesized large poses, degraded copies); selection uses all faces together
        self.val_parts = dict(val_parts or {})
        unknown = set(cfg.select_max_nme) - set(self.val_parts) - {"all"}
        if unknown:
            raise ValueError(f"select_max_nme names validation parts {sorted(unknown)}, but the parts are "
                             f"{sorted(self.val_parts) + ['all']} (give --extra-val-data for more parts)")
        self.dist = DistributedContext()
        dev = resolve_device(device)
        if self.dist.enabled and dev.type == "cuda":
            dev = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(dev)
        self.device = dev
        self.dist.init(dev)
        self.out = Path(out_dir)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.progress = progress and self.dist.is_main
        self.precision = resolve_precision(cfg.precision, dev)
        self.data_lists = data_lists or {}
        mcfg = cfg.model
        self.scheme = training_scheme(mcfg)
        if cfg.augment.needs_flip_permutation and self.scheme is None:
            raise ValueError(f"augmentation flips faces but scheme {mcfg.scheme!r} with {mcfg.num_landmarks} "
                             "landmarks has no registered mirror permutation; register it or set augment.flip_prob=0")

        self.data_faces = None if data_faces is None else int(data_faces)
        self.train_cache = train_data if isinstance(train_data, FaceCache) else FaceCache.build(
            train_data, mcfg, margin=AugmentedBatches.cache_margin(mcfg, cfg.augment), progress=self.progress)
        self.val_cache = val_data if isinstance(val_data, FaceCache) else FaceCache.build(
            val_data, mcfg, margin=1.0, progress=self.progress)
        if self.train_cache.num_landmarks != mcfg.num_landmarks:
            raise ValueError(f"training data has {self.train_cache.num_landmarks} landmarks, "
                             f"the model config {mcfg.num_landmarks}")
        self.steps_per_epoch = len(self.train_cache) // (cfg.batch_size * self.dist.world_size)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.train_cache)} training faces are fewer than one batch of "
                             f"{cfg.batch_size} x {self.dist.world_size} processes")
        if len(self.val_cache) == 0:
            raise ValueError("the validation set is empty")
        if self.data_faces is not None and not 0 <= self.data_faces <= len(self.train_cache):
            raise ValueError(f"data_faces {self.data_faces} is outside 0..{len(self.train_cache)} training faces")
        if teacher is not None and cfg.distill_sources == "data" and self.data_faces is None:
            raise ValueError("distill_sources='data' needs data_faces (how many training faces come from --data)")
        flip = self.scheme.flip_permutation if self.scheme is not None else None
        self.batches = AugmentedBatches(self.train_cache, mcfg, cfg.augment, cfg.batch_size, cfg.seed,
                                        flip_permutation=flip, num_workers=cfg.num_workers,
                                        clean_crops=teacher is not None and cfg.distill_input == "clean")
        self.val_batches = AugmentedBatches(self.val_cache, mcfg, AugmentConfig.disabled(), cfg.val_batch_size,
                                            0, shuffle=False, drop_last=False, num_workers=cfg.num_workers)

        with torch.random.fork_rng(devices=[]):  # seeded init without reseeding the caller's global RNG
            torch.manual_seed(cfg.seed)
            self.model = SMTNet(mcfg)
        if init_weights is not None:
            self.model.load_state_dict(init_weights)
        self.model.to(dev)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # frozen before DDP wraps the model: DDP expects a gradient for every parameter that requires one
        frozen = early_stage_modules(self.model, cfg.freeze_stacks)
        freeze(frozen)
        # modules train_step puts back in eval mode after train(): the frozen ones, and with freeze_bn_stats
        # every BatchNorm layer (whose weights still learn)
        self.kept_in_eval = frozen + (batchnorm_layers(self.model) if cfg.freeze_bn_stats else [])
        self.ddp_model: torch.nn.Module = self.model
        if self.dist.enabled:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[dev.index] if dev.type == "cuda" else None)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls([p for p in self.model.parameters() if p.requires_grad],
                                 lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=(self.precision == "fp16"))
        self.ema = None
        if cfg.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            avg_fn = ema_warmup_avg_fn(cfg.ema_decay) if cfg.ema_warmup else get_ema_multi_avg_fn(cfg.ema_decay)
            self.ema = AveragedModel(self.model, multi_avg_fn=avg_fn, use_buffers=True)
        self.heatmap_loss = get_heatmap_loss(cfg.heatmap_loss)
        self.teacher = None
        if teacher is not None:
            check_teacher(teacher.config, mcfg)
            if cfg.distill_flip:
                perm = list(get_scheme(mcfg.scheme).flip_permutation)
                if len(perm) != mcfg.num_landmarks:
                    raise ValueError(f"distill_flip needs the flip permutation of scheme {mcfg.scheme!r} "
                                     f"for {mcfg.num_landmarks} landmarks")
                self.flip_perm = torch.tensor(perm, device=dev)
            self.teacher = teacher.to(dev).eval().requires_grad_(False)
            if cfg.channels_last:
                self.teacher = self.teacher.to(memory_format=torch.channels_last)
        self._budget: float | None = None  # seconds of --max-minutes, set by run()
        self.git_commit = git_commit()  # the code that trains: read once, so later edits cannot relabel it
        self.state: dict[str, Any] = {
            "epoch": 0, "batch": 0, "step": 0, "stage": 0, "stage_start_epoch": 0, "elapsed": 0.0,
            "best_nme": math.inf, "best_epoch": -1, "stage_best_nme": math.inf, "history": [],
            "teacher": teacher_id if teacher is not None else None,
        }

    # -- pieces ---------------------------------------------------------------------------------
    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _inputs(self, batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalise_crops(torch.from_numpy(batch["crops"]).to(self.device, non_blocking=True),
                            self.cfg.model.mean, self.cfg.model.std)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        pts = torch.from_numpy(batch["landmarks"]).to(self.device)
        return x, crop_to_heatmap(pts, self.cfg.model.heatmap_stride)

    def lr_at(self, epoch: int, step: int, elapsed: float | None = None) -> float:
        cfg = self.cfg
        lr = cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.lr_milestones)
        budget = self._budget
        if budget and cfg.lr_milestone_fractions:
            t = self.state["elapsed"] if elapsed is None else elapsed
            lr *= cfg.lr_gamma ** sum(t >= f * budget for f in cfg.lr_milestone_fractions)
        if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
            lr *= (step + 1) / cfg.warmup_steps
        return lr

    def loss(self, outputs, pts_hm: torch.Tensor, teacher_logits: torch.Tensor | None = None,
             distilled: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 3: sum over stacks of the heatmap loss + coord_weight * the coordinate loss.

        With ``teacher_logits`` (the teacher's last-stack heatmaps) each stack's heatmap loss is
        ``(1 - a) * loss(Gaussian) + a * loss(teacher)``, ``a = distill_weight``; the coordinate
        loss stays on the ground truth. ``distilled`` (a ``(B,)`` bool mask) limits the teacher to
        those samples (``teacher_logits`` then holds their heatmaps only); the others keep the
        plain loss, and the batch mean weighs every sample alike.
        """
        cfg = self.cfg
        a = cfg.distill_weight
        sigmas = stack_sigmas(cfg, self.state["stage"])
        visible = torch.isfinite(pts_hm).all(dim=-1)
        weight = None if bool(visible.all()) else visible.float()
        pts_safe = torch.where(visible[..., None], pts_hm, torch.zeros_like(pts_hm))
        soft = None
        if teacher_logits is not None:
            if distilled is None:
                distilled = torch.ones(pts_hm.shape[0], dtype=torch.bool, device=pts_hm.device)
            if int(distilled.sum()) != teacher_logits.shape[0]:
                raise ValueError(f"{teacher_logits.shape[0]} teacher heatmaps for {int(distilled.sum())} distilled samples")
            if bool(distilled.any()):
                soft = teacher_heatmaps(teacher_logits, cfg.heatmap_loss)
        if soft is not None and not bool(distilled.all()):
            # per-sample mix: Gaussian targets weighted 1 - a (distilled) or 1 (not), teacher's a
            vis = visible.float()
            w_gt = vis * (1.0 - a * distilled.float())[:, None]
            w_t = (vis * a)[distilled]
            share_gt, share_t = w_gt.sum() / vis.sum(), w_t.sum() / vis.sum()
        total = pts_hm.new_zeros(())
        parts = {}
        for s, (heatmaps, residuals) in enumerate(outputs):
            target = gaussian_heatmaps(pts_safe, heatmaps.shape[-1], sigmas[s], visible=visible)
            if soft is None or bool(distilled.all()):
                lh = self.heatmap_loss(heatmaps, target, weight=weight)
                if soft is not None:
                    lt = self.heatmap_loss(heatmaps, soft, weight=weight)
                    parts[f"loss_t{s}"] = float(lt.detach())
                    lh = (1.0 - a) * lh + a * lt
            else:
                lg = self.heatmap_loss(heatmaps, target, weight=w_gt) if share_gt > 0 else heatmaps.new_zeros(())
                lt = self.heatmap_loss(heatmaps[distilled], soft, weight=w_t) if share_t > 0 else heatmaps.new_zeros(())
                parts[f"loss_t{s}"] = float(lt.detach())
                lh = share_gt * lg + share_t * lt
            lc = coord_loss(residuals, heatmaps, pts_safe, theta=cfg.model.theta, weight=weight)
            total = total + lh + cfg.coord_weight * lc
            parts[f"loss_h{s}"] = float(lh.detach())
            parts[f"loss_c{s}"] = float(lc.detach())
        return total, parts

    def distilled_mask(self, indices: np.ndarray) -> torch.Tensor:
        """Which samples of a batch (by training-cache index) get the teacher's targets."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if self.cfg.distill_sources == "data":
            return (idx < self.data_faces).to(self.device)
        return torch.ones(len(idx), dtype=torch.bool, device=self.device)

    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's last-stack heatmap logits for crops ``x``; with ``distill_flip`` the mean of
        those of ``x`` and of the mirrored crops, mirrored back (heatmap column ``j`` of a crop is
        column ``W - 1 - j`` of its mirror image) and reordered with the scheme's flip permutation."""
        if not self.cfg.distill_flip:
            return self.teacher(x)[-1][0]
        n = x.shape[0]
        both = self.teacher(torch.cat([x, x.flip(-1)]))[-1][0]
        return 0.5 * (both[:n] + both[n:].flip(-1)[:, self.flip_perm])

    def train_step(self, batch: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
        self.ddp_model.train()
        keep_frozen_eval(self.kept_in_eval)
        x, pts_hm = self._inputs(batch)
        lr = self.lr_at(self.state["epoch"], self.state["step"])
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        teacher_logits = distilled = None
        if self.teacher is not None:
            distilled = self.distilled_mask(batch["indices"])
            xt = self._inputs({**batch, "crops": batch["clean_crops"]})[0] if "clean_crops" in batch else x
            with torch.no_grad(), self.autocast():  # the teacher sees only the samples it teaches
                teacher_logits = self.teacher_logits(xt[distilled]) if bool(distilled.any()) else x.new_zeros(
                    (0, self.cfg.model.num_landmarks, self.cfg.model.heatmap_size, self.cfg.model.heatmap_size))
        with self.autocast():
            outputs = self.ddp_model(x)
        loss, parts = self.loss(outputs, pts_hm, teacher_logits, distilled)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.state['step']} "
                                     f"(lr {lr:g}); lower the learning rate or enable grad_clip")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.state["step"] += 1
        parts["lr"] = lr
        return float(loss.detach()), parts

    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Validation NME (%) with argmax + residual decoding, and with argmax alone."""
        model = self.eval_model()
        model.eval()
        mcfg = self.cfg.model
        preds, preds_argmax, gts = [], [], []
        for batch in self.val_batches.epoch_batches(0):
            x, _ = self._inputs(batch)
            with self.autocast():
                heatmaps, residuals = model(x)[-1]
            heatmaps, residuals = heatmaps.float(), residuals.float()
            coords, _ = decode_heatmaps(heatmaps, residuals, mcfg.theta)
            coords0, _ = decode_heatmaps(heatmaps, None, mcfg.theta)
            preds.append(heatmap_to_crop(coords, mcfg.heatmap_stride).cpu().numpy())
            preds_argmax.append(heatmap_to_crop(coords0, mcfg.heatmap_stride).cpu().numpy())
            gts.append(batch["landmarks"])
        pred, pred0, gt = np.concatenate(preds), np.concatenate(preds_argmax), np.concatenate(gts)
        kw: dict[str, Any] = {"visible": np.isfinite(gt).all(-1), **error_normalisation(mcfg.num_landmarks, self.scheme)}
        gt_safe = np.where(np.isfinite(gt), gt, 0.0)
        e = normalised_errors(pred, gt_safe, **kw)
        e0 = normalised_errors(pred0, gt_safe, **kw)
        out = {"val_nme": float(np.mean(e) * 100), "val_nme_argmax": float(np.mean(e0) * 100),
               "val_fr8": float(np.mean(e > 0.08) * 100), "val_faces": int(len(e)), "val_norm": kw["norm"]}
        for name, (lo, hi) in self.val_parts.items():
            part = e[lo:hi]
            if part.size:
                out[f"val_nme_{name}"] = float(np.mean(part) * 100)
                out[f"val_fr8_{name}"] = float(np.mean(part > 0.08) * 100)
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        ckpt = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "state": self.state, "config": self.cfg.to_dict(), "precision": self.precision,
        }
        atomic_write(self.out / "last.pt", lambda f: torch.save(ckpt, f))

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        path = Path(path) if path else self.out / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from at {path}")
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        if TrainConfig.from_dict(ckpt["config"]).to_dict() != self.cfg.to_dict():  # keys added later: defaults
            raise ValueError(f"checkpoint {path} was made with a different training config; "
                             "resume with the same config (or start a new --out)")
        if ckpt["state"].get("teacher") != self.state["teacher"]:
            raise ValueError(f"checkpoint {path} was trained with teacher {ckpt['state'].get('teacher')!r}, "
                             f"this run has {self.state['teacher']!r}; resume with the same --teacher")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.state = ckpt["state"]

    def _metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "metrics": metrics, "train_config": self.cfg.to_dict(), "git_commit": self.git_commit,
            "data_lists": self.data_lists, "precision": self.precision, "teacher": self.state["teacher"],
            "world_size": self.dist.world_size, "torch": torch.__version__,
        }

    def save_best(self, metrics: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        model = self.eval_model()
        save_weights(model, self.cfg.model, self.out / "best.safetensors", metadata=self._metadata(metrics))
        torch.save(model.state_dict(), self.out / "stage_best.pt")

    def _write_run_files(self) -> None:
        if not self.dist.is_main:
            return
        (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
        (self.out / "data_lists.json").write_text(json.dumps(self.data_lists))

    def _log(self, record: dict[str, Any]) -> None:
        self.state["history"].append(record)
        if self.dist.is_main:
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def plot_curve(self) -> None:
        if not self.dist.is_main or not self.state["history"]:
            return
        try:
            from matplotlib.figure import Figure
        except ImportError:
            tqdm.write(f"note: curve.png skipped: matplotlib is not installed (pip install "
                       f"'facelandmarks_smt[training]'); the curve's numbers are in {self.out / 'log.jsonl'}")
            return
        h = self.state["history"]
        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot([r["epoch_float"] for r in h], [r["val_nme"] for r in h], "o-", label="argmax + residual")
        ax.plot([r["epoch_float"] for r in h], [r["val_nme_argmax"] for r in h], "x--", label="argmax only")
        for r0, r1 in zip(h, h[1:]):
            if r1["stage"] != r0["stage"]:
                ax.axvline(r1["epoch_float"], color="grey", lw=0.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation NME (%, {h[-1]['val_norm']})")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.out / "curve.png", dpi=100)

    # -- the loop -------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int, start: int) -> Iterator[dict[str, np.ndarray]]:
        if not self.dist.enabled:
            for i, b in enumerate(self.batches.epoch_batches(epoch, start)):
                if start + i >= self.steps_per_epoch:
                    return
                yield b
            return
        order = self.batches.epoch_order(epoch)
        per_step = self.cfg.batch_size * self.dist.world_size
        for k in range(start, self.steps_per_epoch):
            lo = k * per_step + self.dist.rank * self.cfg.batch_size
            yield self.batches.make_batch(epoch, order[lo:lo + self.cfg.batch_size])

    def meets_selection_bars(self, metrics: dict[str, Any]) -> bool:
        """True when every part named in ``cfg.select_max_nme`` scores at most its bar."""
        for part, bar in self.cfg.select_max_nme.items():
            key = "val_nme" if part == "all" else f"val_nme_{part}"
            if not metrics.get(key, math.inf) <= bar:
                return False
        return True

    def _end_of_validation(self, metrics: dict[str, Any]) -> bool:
        """Record a validation; returns True when the current stage should end (plateau)."""
        st = self.state
        rec = {"epoch": st["epoch"], "epoch_float": st["epoch"] + st["batch"] / self.steps_per_epoch,
               "step": st["step"], "stage": st["stage"], "sigmas": stack_sigmas(self.cfg, st["stage"]),
               "lr": self.lr_at(st["epoch"], st["step"]), "elapsed_min": st["elapsed"] / 60, **metrics}
        eligible = self.meets_selection_bars(metrics)
        improved = eligible and metrics["val_nme"] < st["best_nme"]
        if self.cfg.select_max_nme:
            rec["meets_bars"] = eligible
        if metrics["val_nme"] < st["stage_best_nme"]:
            st["stage_best_nme"] = metrics["val_nme"]
            st["stage_bad_epochs"] = 0
        else:
            st["stage_bad_epochs"] = st.get("stage_bad_epochs", 0) + 1
        if improved:
            st["best_nme"] = metrics["val_nme"]
            st["best_epoch"] = rec["epoch_float"]
            rec["best"] = True
            self.save_best({**metrics, "epoch": rec["epoch_float"], "step": st["step"], "stage": st["stage"]})
        self._log(rec)
        if self.progress:
            parts = "".join(f", {k[8:]} {v:.3f}%" for k, v in metrics.items()
                            if k.startswith("val_nme_") and k != "val_nme_argmax")
            tqdm.write(f"epoch {rec['epoch_float']:.2f} stage {st['stage']} sigma {rec['sigmas'][0]:g}: "
                       f"val NME {metrics['val_nme']:.3f}% (argmax {metrics['val_nme_argmax']:.3f}%){parts}"
                       f"{' *best*' if improved else ''}")
        p = self.cfg.plateau_patience
        return bool(p and st["stage_bad_epochs"] >= p)

    def _next_stage(self) -> None:
        """Move to the next sigma, continuing from the best weights so far (SPEC temporal rule)."""
        st = self.state
        best = self.out / "stage_best.pt"
        if self.dist.is_main and best.is_file():
            state = torch.load(best, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state)
            if self.ema is not None:
                self.ema.module.load_state_dict(state)
        if self.dist.enabled:  # every rank takes rank 0's weights
            for t in self.model.state_dict().values():
                dist.broadcast(t, 0)
        st["stage"] += 1
        st["stage_start_epoch"] = st["epoch"]
        st["stage_best_nme"] = math.inf
        st["stage_bad_epochs"] = 0

    def run(self, max_minutes: float | None = None, resume: bool = False, max_steps: int | None = None) -> dict:
        """Train; returns a summary dict (also written to ``OUT/summary.json``). OpenCV runs one
        thread while training (the augmentation threads share the cores with torch); the caller's
        OpenCV thread count is given back when the run ends."""
        with cv2_threads(1):
            return self._run(max_minutes, resume, max_steps)

    def _run(self, max_minutes: float | None, resume: bool, max_steps: int | None) -> dict:
        cfg = self.cfg
        if resume:
            self.load_checkpoint()
        self._write_run_files()
        budget = max_minutes * 60 if max_minutes is not None else None
        self._budget = budget
        val_seconds = 0.0  # the last validation's duration: the budget must leave room for one
        st = self.state
        t0 = time.monotonic() - st["elapsed"]
        t_call = time.monotonic()
        steps_this_call = 0
        stop_reason = "schedule finished"
        total_steps = cfg.epochs * self.steps_per_epoch
        bar = tqdm(total=total_steps, initial=st["step"], disable=not self.progress, desc="train", unit="step",
                   dynamic_ncols=True)
        stopped = False
        try:
            while st["epoch"] < cfg.epochs and not stopped:
                for batch in self._epoch_batches(st["epoch"], st["batch"]):
                    loss, parts = self.train_step(batch)
                    st["batch"] += 1
                    steps_this_call += 1
                    st["elapsed"] = time.monotonic() - t0
                    bar.update(1)
                    if st["step"] % cfg.log_every == 0:
                        bar.set_postfix(loss=f"{loss:.4g}", lr=f"{parts['lr']:.2g}", stage=st["stage"])
                    if budget is not None and val_seconds == 0.0:  # no validation timed yet:
                        per_face = (time.monotonic() - t_call) / (steps_this_call * cfg.batch_size)
                        val_guess = per_face * len(self.val_cache) / 2.5  # forward only ~ 1/3 of a step
                    else:
                        val_guess = val_seconds
                    out_of_time = budget is not None and st["elapsed"] + val_guess >= budget
                    out_of_steps = max_steps is not None and steps_this_call >= max_steps
                    if self.dist.any_flag(out_of_time or out_of_steps):
                        stop_reason = "time budget" if out_of_time else "max_steps"
                        stopped = True
                        break
                    limit = stage_time_limit(cfg, st["stage"], budget)
                    if limit is not None and self.dist.any_flag(st["elapsed"] >= limit) \
                            and st["stage"] < num_stages(cfg) - 1:
                        self._validate_and_record()
                        self._next_stage()
                    every = cfg.val_every_steps
                    if every and st["step"] % every == 0 and st["batch"] < self.steps_per_epoch:
                        tv = time.monotonic()
                        self._validate_and_record()  # mid-epoch: more candidates for selection
                        val_seconds = time.monotonic() - tv
                        self.save_checkpoint()
                if stopped and st["batch"] < self.steps_per_epoch:
                    if max_steps is None or budget is not None:
                        self._validate_and_record()  # a time-budget stop still scores its last weights
                    break
                st["epoch"] += 1
                st["batch"] = 0
                tv = time.monotonic()
                plateau = self._validate_and_record()
                val_seconds = time.monotonic() - tv
                stage_end = stage_end_epoch(cfg, st["stage"], st["stage_start_epoch"])
                if st["stage"] < num_stages(cfg) - 1 and (plateau or st["epoch"] >= stage_end):
                    self._next_stage()
                self.save_checkpoint()
        finally:
            bar.close()
        st["elapsed"] = time.monotonic() - t0
        self.save_checkpoint()
        self.plot_curve()
        summary = {"stop_reason": stop_reason, "epoch": st["epoch"], "step": st["step"], "stage": st["stage"],
                   "best_val_nme": st["best_nme"], "best_epoch": st["best_epoch"],
                   "elapsed_min": st["elapsed"] / 60, "precision": self.precision,
                   "images_per_second": self._throughput()}
        if self.dist.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        self.dist.barrier()
        return summary

    def _validate_and_record(self) -> bool:
        plateau = False
        if self.dist.is_main:
            plateau = self._end_of_validation(self.validate())
        if self.dist.enabled:
            plateau = self.dist.any_flag(plateau)
        return plateau

    def _throughput(self) -> float | None:
        if self.state["elapsed"] <= 0:
            return None
        return self.state["step"] * self.cfg.batch_size * self.dist.world_size / self.state["elapsed"]

    def close(self) -> None:
        self.dist.close()
