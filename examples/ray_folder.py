"""Landmarks for a big folder of images with Ray Data: one Detector per worker, results in Parquet.

    pip install "ray[data]"
    python examples/ray_folder.py photos/ --out landmarks_parquet/ --workers 4
    python examples/ray_folder.py s3://bucket/photos/ --out s3://bucket/landmarks/ --workers 32 --gpus-per-worker 1
    python examples/ray_folder.py --quick          # three small images on a 1-CPU local Ray

Ray reads the files in parallel (`read_binary_files`), hands batches of them to a pool of actors
(`map_batches` with the callable class `LandmarkPredictor`, so each worker loads the model once and
keeps it), and writes Parquet files. On a cluster, start Ray there (docs/scaling.md) and run the
same script on the head node, or pass ``--address``.

CPU budget: Ray Data runs the read and the write as tasks next to the actors, and they need CPU
from the same pool. If the actors hold every CPU (``--workers 2`` with 1 CPU each on a 2-core
machine) the read task waits forever and nothing moves. So the read and write tasks ask for
``IO_CPUS`` (a quarter CPU) each, and the actors share what is left: by default 1 CPU each, less
(a fraction) when the workers would not fit otherwise, e.g. 0.75 each for 2 workers on 2 cores.
An explicit ``--cpus-per-worker`` that does not fit is lowered the same way, with a warning.

Each output row is one face: ``path``, ``face`` (index in the image), ``score`` (mean landmark
score), ``detection_score``, ``box`` [x1, y1, x2, y2], ``landmarks`` [x0, y0, x1, y1, ...] (image
pixels), ``error``. An image without faces gets one row with ``face = -1``; an unreadable one gets
``face = -1`` and the reason in ``error``, and the run goes on.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent / "astronaut.jpg"
EXTENSIONS = ["jpg", "jpeg", "png", "bmp", "webp"]
#: CPU asked for by each of Ray Data's read and write tasks: reading bytes and writing Parquet is
#: light, and whatever they ask for must stay free next to the actors or the pipeline stalls.
IO_CPUS = 0.25


def plan_cpus(total_cpus: float, workers: int, cpus_per_worker: float | None = None) -> float:
    """CPUs each actor asks for so that ``workers`` actors plus one read and one write task fit in
    ``total_cpus``: ``cpus_per_worker`` (default 1) or, when that does not fit, the largest
    fraction that does (rounded down to 1/1000 CPU)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    free = total_cpus - 2 * IO_CPUS
    if free <= 0:
        raise ValueError(f"{total_cpus} CPUs leave nothing for the actors after {2 * IO_CPUS} for reading "
                         "and writing")
    fit = math.floor(1000 * free / workers) / 1000
    if fit <= 0:
        raise ValueError(f"{workers} workers do not fit in {total_cpus} CPUs")
    wanted = 1.0 if cpus_per_worker is None else float(cpus_per_worker)
    if wanted > fit and cpus_per_worker is not None:
        print(f"ray_folder: {workers} workers x {wanted:g} CPUs + {2 * IO_CPUS:g} for reading/writing do not "
              f"fit in {total_cpus:g} CPUs (Ray Data would wait forever); using {fit:g} CPUs per worker",
              file=sys.stderr)
    return min(wanted, fit)


class LandmarkPredictor:
    """Ray Data callable class: built once per worker (loads the model), then called per batch."""

    def __init__(self, weights: str = "smtnet-300w-small", device: str = "auto", threads: int = 1) -> None:
        import cv2

        from facelandmarks_smt import Detector

        # the actor's share of the CPUs, for whichever backend "auto" picks (torch, onnxruntime or
        # OpenVINO take the Detector's threads) and for the face detector (OpenCV, this process only):
        # left at their defaults, each actor would run one thread per core and two actors on two
        # cores would fight (measured: 2.5 images/s with 2 workers against 4.4 with 1)
        cv2.setNumThreads(threads)
        self.detector = Detector.from_pretrained(weights, device=device, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa
        from PIL import Image

        rows: dict[str, list] = {k: [] for k in
                                 ("path", "face", "score", "detection_score", "box", "landmarks", "error")}

        def add(path, face=-1, score=None, det_score=None, box=None, landmarks=None, error=None):
            for k, v in zip(rows, (path, face, score, det_score, box, landmarks, error)):
                rows[k].append(v)

        for data, path in zip(batch["bytes"], batch["path"]):
            try:
                with Image.open(io.BytesIO(data)) as im:
                    image = np.asarray(im.convert("RGB"))
                faces = self.detector.detect(image)
            except Exception as e:  # a corrupt file must not stop a run over millions of them
                add(path, error=f"{type(e).__name__}: {e}")
                continue
            if not faces:
                add(path)
            for i, f in enumerate(faces):
                add(path, i, float(f.scores.mean()), f.detection_score, f.box.astype(float).tolist(),
                    f.landmarks.reshape(-1).astype(float).tolist())
        floats = pa.list_(pa.float32())
        return pa.table({
            "path": pa.array(rows["path"], pa.string()), "face": pa.array(rows["face"], pa.int32()),
            "score": pa.array(rows["score"], pa.float32()),
            "detection_score": pa.array(rows["detection_score"], pa.float32()),
            "box": pa.array(rows["box"], floats), "landmarks": pa.array(rows["landmarks"], floats),
            "error": pa.array(rows["error"], pa.string()),
        })


def landmarks_dataset(source: str, weights: str = "smtnet-300w-small", workers: int = 1, batch_size: int = 16,
                      device: str = "auto", cpus_per_worker: float = 1, gpus_per_worker: float = 0):
    """The Ray Dataset of face rows for every image under ``source`` (lazy until written/read).

    ``cpus_per_worker`` is what each actor reserves (may be a fraction, see `plan_cpus`); its torch
    threads are that rounded, at least 1. The read tasks ask for `IO_CPUS` each.
    """
    import ray

    ds = ray.data.read_binary_files(source, include_paths=True, file_extensions=EXTENSIONS,
                                    ray_remote_args={"num_cpus": IO_CPUS})
    return ds.map_batches(
        LandmarkPredictor,
        fn_constructor_kwargs={"weights": weights, "device": device, "threads": max(1, round(cpus_per_worker))},
        batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)


def quick_folder(root: Path) -> Path:
    """Two small pictures made from the sample photo and one corrupt file."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    face = cv2.imread(str(SAMPLE))[0:256, 96:352]
    cv2.imwrite(str(root / "a.jpg"), face)
    cv2.imwrite(str(root / "b.png"), face[:, ::-1])
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", help="folder (or s3://, gs:// ... prefix) of images")
    p.add_argument("--out", help="Parquet output folder (default: TMPDIR/facelandmarks_smt_parquet)")
    p.add_argument("--weights", default="smtnet-300w-small", help="pretrained name or .safetensors file")
    p.add_argument("--workers", type=int, default=1, help="Detector actors (one model each)")
    p.add_argument("--cpus-per-worker", type=float, default=None,
                   help="CPUs reserved per actor, its torch threads rounded (default: 1, or the fraction that "
                        "leaves room for reading and writing when the workers would take every CPU)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per actor (e.g. 1, or 0.5 to share)")
    p.add_argument("--batch-size", type=int, default=16, help="images per call of an actor")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (each actor sees its own GPU as cuda)")
    p.add_argument("--address", help="Ray cluster address (default: a local Ray, or RAY_ADDRESS)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--object-store-mb", type=int, help="object store of the local Ray instance (default: Ray's)")
    p.add_argument("--quick", action="store_true", help="three small images on a 1-CPU local Ray")
    args = p.parse_args(argv)
    if args.source is None and not args.quick:
        p.error("give a source folder, or --quick")

    import ray

    tmp = Path(tempfile.mkdtemp(prefix="facelandmarks_smt_ray_"))
    source = args.source or str(quick_folder(tmp / "photos"))
    out = args.out or str(tmp / "parquet")
    if args.quick:
        args.num_cpus, args.workers, args.batch_size = 1, 1, 2
    if args.quick:
        args.object_store_mb = args.object_store_mb or 100
    ray.init(address=args.address, num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             **({"object_store_memory": args.object_store_mb * 1024 ** 2} if args.object_store_mb else {}))
    try:
        cpus = plan_cpus(ray.cluster_resources().get("CPU", 1), args.workers, args.cpus_per_worker)
        print(f"{args.workers} worker(s) x {cpus:g} CPU, read/write tasks {IO_CPUS:g} CPU each, "
              f"Ray CPUs {ray.cluster_resources().get('CPU', 0):g}", flush=True)
        start = time.perf_counter()
        ds = landmarks_dataset(source, weights=args.weights, workers=args.workers, batch_size=args.batch_size,
                               device=args.device, cpus_per_worker=cpus, gpus_per_worker=args.gpus_per_worker)
        ds.write_parquet(out, ray_remote_args={"num_cpus": IO_CPUS})
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()

    import pyarrow.parquet as pq

    table = pq.read_table(out)
    faces = sum(1 for f in table.column("face").to_pylist() if f >= 0)
    errors = sum(1 for e in table.column("error").to_pylist() if e)
    images = len(set(table.column("path").to_pylist()))
    print(f"{images} images in {seconds:.1f} s ({images / seconds:.2f} images/s; Ray start not counted, "
          "actor start and model loading counted)")
    print(f"{table.num_rows} rows: {faces} faces, {errors} unreadable files; Parquet in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
