"""Pre-cropped face cache and deterministic augmented batches, so CPU time goes to the network.

Decoding a JPEG costs several times more than the augmentation warp, so `FaceCache.build` decodes
every face once and keeps only a generous axis-aligned square around it: the crop square
(``crop_factor`` x the square landmark box) enlarged again by ``margin`` (default 1.6, enough for
a 30 degree rotation, 7% zoom-out and 5% shift without leaving the cached region), resized to
``cache_size`` x ``cache_size`` uint8 (default ``input_size * margin`` rounded up to 16: 416 for
input 256, so the cached face keeps at least the input resolution; 320 halves the memory at
0.77x the input resolution). Landmarks and the landmark box are stored in cache pixels, so
`augment_sample(cache_image, ..., box_in_cache, ...)` calls `crop_matrix` on the cache exactly as
it would on the original image: the crops agree up to resampling (tests/test_augment.py checks).
Large faces are box-filtered down by an integer factor before the warp (``antialias``), which a
single bilinear warp would alias.

`AugmentedBatches` draws batches from a cache: the order is a function of ``(seed, epoch)`` and
each sample's augmentation of ``(seed, epoch, face index)``, so ``epoch_batches(epoch)`` replays
the same stream after a resume, whatever the number of worker threads.

Throughput (benchmarks/augment_throughput.py, batch 16, input 256, cache 416, default
augmentation, one thread of a shared 2-core CPU, cv2 5.0): ~70-75 batches/s (~0.85 ms a face),
against ~28 batches/s decoding a 640x480 JPEG per sample (real 300-W photos are larger, so
slower); building the cache runs ~260 faces/s on those JPEGs. One background worker
(the default) hides this behind the training step, which takes far longer on a CPU.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..config import ModelConfig
from ..fileio import atomic_write
from ..geometry import crop_matrix, landmark_box, transform_points, warp_crop
from ..runtime.device import cv2_threads
from .augment import (
    AugmentConfig,
    as_flip_permutation,
    augment_sample,
    sample_augmentation,
)

CACHE_FORMAT = "facelandmarks_smt.face_cache/1"
_ARRAYS = ("images", "landmarks", "boxes", "to_cache")


def default_cache_size(input_size: int, margin: float) -> int:
    """Smallest multiple of 16 that keeps the crop at ``input_size`` resolution inside the cache."""
    return int(math.ceil(input_size * margin / 16.0) * 16)


def _jsonable(value: Any) -> Any:
    """Best-effort JSON view of dataset meta (paths become strings, arrays lists, rest dropped)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray) and value.size <= 1024:
        return value.tolist()
    if isinstance(value, (list, tuple)):
        out = [_jsonable(v) for v in value]
        return out if all(v is not _DROP for v in out) else _DROP
    if isinstance(value, dict):
        d = {str(k): _jsonable(v) for k, v in value.items()}
        return {k: v for k, v in d.items() if v is not _DROP}
    return _DROP


_DROP = object()


def _publish(built: Path, final: Path) -> None:
    """Move a complete cache folder to ``final``; if another process finished first, keep theirs."""
    if (final / "info.json").is_file():
        shutil.rmtree(built, ignore_errors=True)
        return
    if final.exists():  # an older build that never finished (no info.json)
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(built, final)
    except OSError:
        if not (final / "info.json").is_file():
            raise
        shutil.rmtree(built, ignore_errors=True)  # lost the race to an identical build


class FaceCache:
    """Every face of a dataset pre-cut to a fixed-size square around its crop region.

    Attributes:
        images: ``(N, C, C, 3)`` uint8 RGB (an ndarray, or a read-only memmap after `load`).
        landmarks: ``(N, L, 2)`` float32 in cache pixels (NaN stays NaN).
        boxes: ``(N, 4)`` float32 landmark boxes in cache pixels (finite landmarks only).
        to_cache: ``(N, 2, 3)`` float64 original-image -> cache affines (to map results back).
        info: dict with ``cache_size``, ``margin``, ``crop_factor``, ``region_factor``
            (= crop_factor * margin), ``input_size``, ``num_landmarks``, ``antialias`` and
            ``metas`` (JSON-able part of each sample's meta dict, plus its image size).
    """

    def __init__(self, images: np.ndarray, landmarks: np.ndarray, boxes: np.ndarray,
                 to_cache: np.ndarray, info: dict[str, Any]) -> None:
        n = len(images)
        if not (len(landmarks) == len(boxes) == len(to_cache) == n):
            raise ValueError("cache arrays disagree in length")
        if n and (images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8):
            raise ValueError(f"cache images must be (N, C, C, 3) uint8, got {images.shape} {images.dtype}")
        self.images = images
        self.landmarks = landmarks
        self.boxes = boxes
        self.to_cache = to_cache
        self.info = info

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cache image, landmarks in cache px, landmark box in cache px)`` of face ``i``."""
        return self.images[i], self.landmarks[i], self.boxes[i]

    @property
    def num_landmarks(self) -> int:
        return int(self.info["num_landmarks"])

    @property
    def cache_size(self) -> int:
        return int(self.info["cache_size"])

    @property
    def region_factor(self) -> float:
        """Cached square side over the square landmark box side."""
        return float(self.info["region_factor"])

    @staticmethod
    def _cache_one(sample: Any, region_factor: float, cache_size: int, antialias: bool):
        try:
            image, landmarks, meta = sample
        except (TypeError, ValueError):
            raise ValueError("dataset items must be (image, landmarks, meta) triples") from None
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"dataset images must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        pts = np.asarray(landmarks, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"dataset landmarks must have shape (L, 2), got {pts.shape}")
        box = landmark_box(pts)
        m = crop_matrix(box, region_factor, cache_size)
        img_c = warp_crop(image, m, cache_size, antialias=antialias)
        pts_c = transform_points(pts, m).astype(np.float32)
        # m is scale + translation only, so the box maps corner to corner.
        box_c = transform_points(box.reshape(2, 2), m).reshape(4).astype(np.float32)
        meta_j = _jsonable(dict(meta) if isinstance(meta, dict) else {})
        meta_j["image_size"] = [int(image.shape[1]), int(image.shape[0])]
        return img_c, pts_c, box_c, m, meta_j

    @classmethod
    def build(
        cls,
        dataset: Sequence[Any],
        model_cfg: ModelConfig,
        *,
        cache_size: int | None = None,
        margin: float = 1.6,
        progress: bool = True,
        num_workers: int | None = None,
        path: str | os.PathLike | None = None,
        antialias: bool = True,
    ) -> "FaceCache":
        """Decode each face of ``dataset`` once and keep its enlarged crop region.

        Args:
            dataset: a sequence of ``(image HxWx3 uint8 RGB, landmarks (L, 2), meta dict)``.
            model_cfg: ``crop_factor`` and ``input_size`` of the model to train.
            cache_size: side of each cached image; default `default_cache_size`.
            margin: cached region side over the crop square side (>= 1).
            progress: show a tqdm bar.
            num_workers: decoding threads (cv2/PIL decoding releases the GIL); default
                ``min(2, cpu count)``; 0 decodes in the calling thread.
            path: if given, the arrays are written straight into ``.npy`` files in this
                directory (memmapped, so datasets larger than RAM work) and the result is
                `load`-ed from there.
            antialias: box-filter large faces before the warp (see `facelandmarks_smt.geometry.warp_crop`).
        """
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 1.0):
            raise ValueError(f"margin must be a finite number >= 1, got {margin!r}")
        if cache_size is None:
            cache_size = default_cache_size(model_cfg.input_size, margin)
        if not (isinstance(cache_size, (int, np.integer)) and 16 <= cache_size <= 4096):
            raise ValueError(f"cache_size must be an int in [16, 4096], got {cache_size!r}")
        cache_size = int(cache_size)
        if num_workers is None:
            num_workers = min(2, os.cpu_count() or 1)
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        n = len(dataset)
        if n == 0:
            raise ValueError("cannot build a cache from an empty dataset")
        region_factor = float(model_cfg.crop_factor * margin)

        def one(i: int):
            return cls._cache_one(dataset[i], region_factor, cache_size, antialias)

        first = one(0)
        num_landmarks = first[1].shape[0]
        shape = (n, cache_size, cache_size, 3)
        if path is not None:
            # Built in a private folder and renamed into place when complete: two runs building
            # the same cache at once must not truncate files the other has memory-mapped.
            final_dir = Path(path)
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            out_dir = final_dir.parent / f".{final_dir.name}.building-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir()
            images = np.lib.format.open_memmap(out_dir / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        else:
            images = np.empty(shape, dtype=np.uint8)
        landmarks = np.empty((n, num_landmarks, 2), dtype=np.float32)
        boxes = np.empty((n, 4), dtype=np.float32)
        to_cache = np.empty((n, 2, 3), dtype=np.float64)
        metas: list[Any] = [None] * n

        def store(i: int, r) -> None:
            if r[1].shape[0] != num_landmarks:
                raise ValueError(f"sample {i} has {r[1].shape[0]} landmarks, sample 0 has {num_landmarks}")
            images[i], landmarks[i], boxes[i], to_cache[i], metas[i] = r

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="caching faces", unit="face")
        try:
            store(0, first)
            if bar is not None:
                bar.update(1)
            if num_workers == 0:
                for i in range(1, n):
                    store(i, one(i))
                    if bar is not None:
                        bar.update(1)
            else:
                # A bounded window of futures keeps at most ~4 decoded faces per worker in flight.
                with ThreadPoolExecutor(num_workers, thread_name_prefix="facecache") as ex:
                    pending: deque = deque()
                    nxt = 1
                    while nxt < n or pending:
                        while nxt < n and len(pending) < 4 * num_workers:
                            pending.append((nxt, ex.submit(one, nxt)))
                            nxt += 1
                        i, fut = pending.popleft()
                        store(i, fut.result())
                        if bar is not None:
                            bar.update(1)
        except BaseException:
            if path is not None:
                del images
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            if bar is not None:
                bar.close()
        info = {
            "format": CACHE_FORMAT,
            "cache_size": cache_size,
            "margin": float(margin),
            "crop_factor": float(model_cfg.crop_factor),
            "region_factor": region_factor,
            "input_size": int(model_cfg.input_size),
            "num_landmarks": int(num_landmarks),
            "antialias": bool(antialias),
            "metas": metas,
        }
        cache = cls(images, landmarks, boxes, to_cache, info)
        if path is not None:
            images.flush()
            del images
            cache.images = None  # type: ignore[assignment]  # save() rewrites all but images
            cache._save_arrays(out_dir, skip_images=True)
            _publish(out_dir, final_dir)
            return cls.load(final_dir)
        return cache

    def _save_arrays(self, out_dir: Path, skip_images: bool = False) -> None:
        for name in _ARRAYS:
            if name == "images" and skip_images:
                continue
            np.save(out_dir / f"{name}.npy", np.ascontiguousarray(getattr(self, name)))
        atomic_write(out_dir / "info.json", json.dumps(self.info))

    def save(self, path: str | os.PathLike) -> None:
        """Write the cache to directory ``path`` (one ``.npy`` per array + ``info.json``)."""
        out_dir = Path(path)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "info.json").unlink(missing_ok=True)
        self._save_arrays(out_dir)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "FaceCache":
        """Open a saved cache; ``mmap=True`` maps the images read-only instead of reading them."""
        in_dir = Path(path)
        info_path = in_dir / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"no complete face cache at {in_dir} (missing info.json)")
        info = json.loads(info_path.read_text())
        if info.get("format") != CACHE_FORMAT:
            raise ValueError(f"{in_dir} is not a {CACHE_FORMAT} cache (format {info.get('format')!r})")
        arrays = {name: np.load(in_dir / f"{name}.npy", mmap_mode="r" if (mmap and name == "images") else None)
                  for name in _ARRAYS}
        return cls(arrays["images"], arrays["landmarks"], arrays["boxes"], arrays["to_cache"], info)


class AugmentedBatches:
    """Deterministic stream of augmented training (or plain validation) batches from a cache.

    Each batch is a dict:
        ``crops``: ``(B, S, S, 3)`` uint8 RGB (feed to `geometry.normalise_crops`);
        ``landmarks``: ``(B, L, 2)`` float32 crop pixels (flip-permuted);
        ``indices``: ``(B,)`` int64 cache indices (= dataset indices);
        ``matrices``: ``(B, 2, 3)`` float64 original-image -> crop affines (before permutation);
        ``flipped``: ``(B,)`` bool;
        ``clean_crops`` (only with ``clean_crops=True``): the same crops (same warp and flip) without
        the photometric draws (blur, colour, occlusion, degradations), for a teacher that should give
        its answer on the clean face as the target of the degraded one.

    The face order of epoch ``e`` depends only on ``(seed, e)`` and a face's augmentation only
    on ``(seed, e, index)``, so ``epoch_batches(e, start)`` reproduces a stream exactly (resume
    mid-epoch with ``start``), independently of ``num_workers``. Iterating the object itself runs
    epoch ``self.epoch`` and then increments it (set it with `set_epoch` when resuming).

    Args:
        cache: the `FaceCache`.
        model_cfg: ``input_size`` and ``crop_factor`` of the crops.
        aug_cfg: augmentation (``AugmentConfig.disabled()`` for validation).
        batch_size: faces per batch.
        seed: non-negative int.
        flip_permutation: the scheme's mirror permutation (sequence or LandmarkScheme); needed
            only if ``aug_cfg`` can flip.
        shuffle: reorder faces each epoch (False: cache order).
        drop_last: drop the last incomplete batch.
        num_workers: threads building batches in the background (0: build on demand in the
            caller's thread). cv2 releases the GIL, so one thread overlaps with the training step.
        prefetch: batches built ahead of the consumer (when ``num_workers`` > 0).
        cv2_threads: OpenCV's thread count while an epoch's batches are made, 1 by default so
            OpenCV's own pool does not fight torch for the cores; the caller's count is given back
            when the epoch ends (`runtime.device.cv2_threads`, which sets nothing when the count
            already is that); None leaves it.
        clean_crops: also serve ``clean_crops`` (the augmentation draws are unchanged).
    """

    def __init__(
        self,
        cache: FaceCache,
        model_cfg: ModelConfig,
        aug_cfg: AugmentConfig,
        batch_size: int,
        seed: int,
        flip_permutation: Any = None,
        shuffle: bool = True,
        drop_last: bool = True,
        *,
        num_workers: int = 1,
        prefetch: int = 2,
        cv2_threads: int | None = 1,
        clean_crops: bool = False,
    ) -> None:
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if num_workers < 0 or prefetch < 1:
            raise ValueError("num_workers must be >= 0 and prefetch >= 1")
        if len(cache) == 0:
            raise ValueError("empty cache")
        self.flip_permutation = as_flip_permutation(flip_permutation, cache.num_landmarks)
        if aug_cfg.needs_flip_permutation and self.flip_permutation is None:
            raise ValueError("aug_cfg flips faces (flip_prob > 0) but no flip_permutation was given")
        self.cache = cache
        self.model_cfg = model_cfg
        self.aug_cfg = aug_cfg
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch)
        self.cv2_threads = cv2_threads
        self.clean_crops = bool(clean_crops)
        self.epoch = 0
        if len(self) == 0:
            raise ValueError(f"batch_size {batch_size} > {len(cache)} faces with drop_last=True gives no batches")
        need = self.required_region_factor(model_cfg, aug_cfg)
        if need > cache.region_factor + 1e-6:
            warnings.warn(
                f"augmented crops can reach {need:.2f}x the face box but the cache holds only "
                f"{cache.region_factor:.2f}x: corners may show black padding that the original "
                "image would fill (build the cache with a larger margin)", stacklevel=2)

    @staticmethod
    def cache_margin(model_cfg: ModelConfig, aug_cfg: AugmentConfig) -> float:
        """The ``margin`` of a training cache (`FaceCache.build`): the cached region over the crop
        square, so that every augmented crop stays inside it (at least 1). The one place the
        training code turns `required_region_factor` into crop-square units."""
        return max(1.0, AugmentedBatches.required_region_factor(model_cfg, aug_cfg) / model_cfg.crop_factor)

    @staticmethod
    def required_region_factor(model_cfg: ModelConfig, aug_cfg: AugmentConfig) -> float:
        """Square side (in face box sides) that the most extreme augmented crop can reach."""
        if not aug_cfg.enabled:
            return float(model_cfg.crop_factor)
        a = math.radians(min(aug_cfg.rotation, 45.0))
        half = model_cfg.crop_factor / 2.0 / (1.0 - aug_cfg.scale) * (math.cos(a) + math.sin(a))
        return 2.0 * (half + aug_cfg.translation)

    def __len__(self) -> int:
        n, b = len(self.cache), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Cache indices of epoch ``epoch`` in the order they are served."""
        n = len(self.cache)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch), 0x5EED]).permutation(n).astype(np.int64)

    def make_batch(self, epoch: int, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Build the batch of the given cache indices as epoch ``epoch`` would."""
        s, b = self.model_cfg.input_size, len(indices)
        crops = np.empty((b, s, s, 3), dtype=np.uint8)
        pts = np.empty((b, self.cache.num_landmarks, 2), dtype=np.float32)
        mats = np.empty((b, 2, 3), dtype=np.float64)
        flipped = np.zeros(b, dtype=bool)
        clean = np.empty_like(crops) if self.clean_crops else None
        for j, idx in enumerate(indices):
            idx = int(idx)
            if self.aug_cfg.enabled:
                params = sample_augmentation(np.random.default_rng([self.seed, int(epoch), idx]), self.aug_cfg)
            else:
                params = sample_augmentation(None, self.aug_cfg)  # type: ignore[arg-type]
            image, lm, box = self.cache[idx]
            crops[j], pts[j], m = augment_sample(image, lm, box, self.model_cfg, self.aug_cfg, None,
                                                 self.flip_permutation, params=params)
            if clean is not None:
                geometric = {**params, "blur": 0.0, "photo": None, "degrade": None}
                clean[j] = augment_sample(image, lm, box, self.model_cfg, self.aug_cfg, None,
                                          self.flip_permutation, params=geometric)[0]
            t = self.cache.to_cache[idx]
            mats[j, :, :2] = m[:, :2] @ t[:, :2]
            mats[j, :, 2] = m[:, :2] @ t[:, 2] + m[:, 2]
            flipped[j] = params["flip"]
        batch = {"crops": crops, "landmarks": pts, "indices": np.asarray(indices, dtype=np.int64),
                 "matrices": mats, "flipped": flipped}
        if clean is not None:
            batch["clean_crops"] = clean
        return batch

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The batches of epoch ``epoch`` from batch number ``start`` on (for mid-epoch resume)."""
        order = self.epoch_order(epoch)
        nb, b = len(self), self.batch_size
        chunks = [order[k * b:(k + 1) * b] for k in range(max(0, int(start)), nb)]
        with cv2_threads(self.cv2_threads):
            yield from self._batches(epoch, chunks)

    def _batches(self, epoch: int, chunks: list) -> Iterator[dict[str, np.ndarray]]:
        if self.num_workers == 0:
            for idx in chunks:
                yield self.make_batch(epoch, idx)
            return
        ex = ThreadPoolExecutor(self.num_workers, thread_name_prefix="augment")
        pending: deque = deque()
        try:
            it = iter(chunks)
            for idx in it:
                pending.append(ex.submit(self.make_batch, epoch, idx))
                if len(pending) >= self.prefetch + self.num_workers - 1:
                    break
            while pending:
                batch = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(ex.submit(self.make_batch, epoch, nxt))
                yield batch
        finally:
            for f in pending:
                f.cancel()
            ex.shutdown(wait=True)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        epoch = self.epoch
        yield from self.epoch_batches(epoch)
        self.epoch = epoch + 1


BatchSampler = AugmentedBatches  # the name the training loop may know it by
