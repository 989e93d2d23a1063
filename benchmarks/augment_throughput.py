"""Augmented-batch throughput on this CPU (not a test): batch 16, input 256, default augmentation.

Compares building batches from a `FaceCache` against decoding JPEGs and cropping each sample
from the full image, the cost the cache exists to avoid. Run:

    .venv/bin/python benchmarks/augment_throughput.py [--faces 64] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from facelandmarks_smt.config import ModelConfig
from facelandmarks_smt.schemes import FLIP_PERMUTATION_68
from facelandmarks_smt.training.augment import AugmentConfig, augment_sample
from facelandmarks_smt.training.cache import AugmentedBatches, FaceCache


class JpegFaces:
    """Synthetic 640x480 JPEG photos with one ~200 px face each, decoded on every access."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            small = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
            img = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
            img = cv2.add(img, rng.integers(0, 40, size=img.shape, dtype=np.uint8))  # texture for JPEG
            ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            pts = (rng.uniform(220, 420, size=(68, 2))).astype(np.float32)
            self.items.append((jpg, pts))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        jpg, pts = self.items[i]
        img = cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return img, pts, {"index": i}


def rate(batches, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    for _ in batches:
        n += 1
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    cfg, aug = ModelConfig(input_size=256), AugmentConfig()
    data = JpegFaces(args.faces)
    print(f"cpus={os.cpu_count()} cv2={cv2.__version__} faces={len(data)} batch={args.batch_size} input=256")

    t0 = time.perf_counter()
    cache = FaceCache.build(data, cfg, progress=False, num_workers=2)
    dt = time.perf_counter() - t0
    print(f"cache build: {len(data) / dt:7.1f} faces/s  (cache {cache.cache_size}px, "
          f"{cache.images.nbytes / len(cache) / 1e6:.2f} MB/face)")

    def epochs(b):
        e = 0
        while True:
            yield from b.epoch_batches(e)
            e += 1

    for workers in (0, 1, 2):
        b = AugmentedBatches(cache, cfg, aug, args.batch_size, 0, FLIP_PERMUTATION_68, num_workers=workers)
        print(f"cache, num_workers={workers}: {rate(epochs(b), args.seconds):7.1f} batches/s")

    def direct():
        rng = np.random.default_rng(0)
        cv2.setNumThreads(1)
        while True:
            idx = rng.permutation(len(data))[: args.batch_size]
            out = [augment_sample(*data[int(i)][:2], None, cfg, aug, rng, FLIP_PERMUTATION_68) for i in idx]
            yield np.stack([o[0] for o in out])

    print(f"JPEG decode + crop per sample (no cache): {rate(direct(), args.seconds):7.1f} batches/s")


if __name__ == "__main__":
    main()
