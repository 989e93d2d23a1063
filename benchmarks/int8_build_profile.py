"""Wall time and peak memory of each phase of the first int8 build (what the first
``Detector(..., backend="onnxruntime", precision="int8", calibration=...)`` does before it can
answer), per model.

    OMP_NUM_THREADS=1 python benchmarks/int8_build_profile.py [--weights smtnet-300w-tiny smtnet-300w-small]
                                                              [--data /path/to/landmarks68] [--threads 1]

Each model runs in a fresh process on an empty cache folder: the library's own path
(`runtime.graphs.int8_graph`, then an `OrtRunner` on the graph and one call at batch 1). Phases
are cut by wrapping the library's stage functions and onnxruntime's quantisation internals
(works whether or not a stage runs; absent stages are not printed). "peak MB" is the process's
peak resident memory (VmHWM, reset at the start of each phase through /proc/self/clear_refs, so a
phase's peak is its own); "extra MB" is that peak above the resident memory before the build
started (weights loaded, libraries imported): the memory a user's process grows by.
Linux only (VmHWM). The calibration faces are the 300-W training folders (never test faces).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py (scripts run from this folder)

DEFAULT_DATA = os.environ.get("FACELANDMARKS_SMT_DATA", "/work/shared/data/landmarks68")


def _status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


class Phases:
    """Consecutive phases: ``start(label)`` closes the running one (seconds, peak RSS) and opens ``label``."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.label: str | None = None
        self.t = time.perf_counter()
        self.baseline_mb = _status_kb("VmRSS") / 1024
        _reset_peak()

    def start(self, label: str | None) -> None:
        now = time.perf_counter()
        if self.label is not None:
            self.rows.append({"phase": self.label, "seconds": round(now - self.t, 2),
                              "peak_mb": round(_status_kb("VmHWM") / 1024), "rss_end_mb": round(_status_kb("VmRSS") / 1024)})
        self.label, self.t = label, time.perf_counter()
        _reset_peak()


def _wrap(owner, name: str, phases: Phases, label: str, after: str) -> None:
    """Run ``owner.name`` as phase ``label``; what follows it until the next stage is ``after``."""
    fn = getattr(owner, name, None)
    if fn is None:
        return

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        phases.start(label)
        try:
            return fn(*args, **kwargs)
        finally:
            phases.start(after)

    setattr(owner, name, wrapper)


def profile(weights: str, data_root: str, threads: int) -> dict:
    import numpy as np
    import onnxruntime
    import onnxruntime.quantization.calibrate as calibrate
    import onnxruntime.quantization.shape_inference as shape_inference
    import torch

    from facelandmarks_smt import hub

    ort_quantize = sys.modules["onnxruntime.quantization.quantize"]  # the attribute of the package is a function
    from facelandmarks_smt.runtime import graphs
    from facelandmarks_smt.runtime.backends import OrtRunner
    from facelandmarks_smt.weights_io import load_model, sha256_file

    if threads:  # every session, the calibrator's too (it sets no thread count of its own), gets ``threads``
        session_class = onnxruntime.InferenceSession

        def session(path_or_bytes, sess_options=None, *args, **kwargs):
            sess_options = sess_options or onnxruntime.SessionOptions()
            if not sess_options.intra_op_num_threads:
                sess_options.intra_op_num_threads = threads
            return session_class(path_or_bytes, sess_options, *args, **kwargs)

        onnxruntime.InferenceSession = session
    path, expected = hub.resolve(weights)
    model, _ = load_model(path, sha256=expected)
    sha = sha256_file(path)
    root = Path(data_root)
    root = root / "300w" if (root / "300w").is_dir() else root
    folders = [root / "afw", root / "helen" / "trainset", root / "lfpw" / "trainset"]

    phases = Phases()
    _wrap(graphs, "int8_recipe", phases, "calibration folders: read + content hash", "graphs: other")
    _wrap(graphs, "calibration_crops", phases, "calibration crops (read, warp)", "graphs: other")
    _wrap(graphs, "export_onnx", phases, "export (torch.onnx)", "graphs: other")
    _wrap(graphs, "quantize_int8", phases, "quantize_int8: other", "graphs: other")
    for owner in (ort_quantize, calibrate):
        _wrap(owner, "load_model_with_shape_infer", phases, "onnx shape inference (load)", "quantize_int8: other")
    _wrap(shape_inference, "quant_pre_process", phases, "quant_pre_process", "quantize_int8: other")
    _wrap(calibrate.CalibraterBase, "create_inference_session", phases, "calibration: session", "quantize_int8: other")
    _wrap(calibrate.MinMaxCalibrater, "collect_data", phases, "calibration: run + collect", "quantize_int8: other")
    _wrap(calibrate.MinMaxCalibrater, "augment_graph", phases, "calibration: augment graph", "quantize_int8: other")
    for cls in ("QDQQuantizer",):
        if hasattr(ort_quantize, cls):
            _wrap(getattr(ort_quantize, cls), "quantize_model", phases, "quantize_model (QDQ)", "quantize_int8: other")

    total_t = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FACELANDMARKS_SMT_CACHE"] = cache
        phases.start("graphs: other")
        graph = graphs.int8_graph(model, sha, [str(f) for f in folders])
        phases.start("session + first call (batch 1)")
        runner = OrtRunner(graph, threads)
        runner(torch.zeros(1, 3, model.config.input_size, model.config.input_size))
        phases.start(None)
        total = time.perf_counter() - total_t
        meta = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).get_modelmeta()
        recipe = json.loads(meta.custom_metadata_map.get("facelandmarks_smt.calibration", "{}"))
    merged: dict[str, dict] = {}
    for row in phases.rows:  # a phase entered several times (e.g. "other") is summed, its peak maxed
        m = merged.setdefault(row["phase"], {"phase": row["phase"], "seconds": 0.0, "peak_mb": 0})
        m["seconds"] = round(m["seconds"] + row["seconds"], 2)
        m["peak_mb"] = max(m["peak_mb"], row["peak_mb"])
    rows = [{**m, "extra_mb": round(m["peak_mb"] - phases.baseline_mb)} for m in merged.values()]
    return {"weights": weights, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "machine": cpu_name(), "threads": threads, "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__, "numpy": np.__version__, "baseline_mb": round(phases.baseline_mb),
            "total_seconds": round(total, 1), "peak_extra_mb": max(r["extra_mb"] for r in rows),
            "num_crops": recipe.get("num_crops"), "rows": rows}


def print_table(result: dict) -> None:
    print(f"\n{result['weights']} ({result['params_m']}M parameters), {result['machine']}, {result['threads']} "
          f"thread(s), onnxruntime {result['onnxruntime']}, torch {result['torch']}, {result['num_crops']} "
          f"calibration crops; RSS before the build {result['baseline_mb']} MB")
    print("| phase | seconds | peak MB | extra MB |\n|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['phase']} | {r['seconds']:.2f} | {r['peak_mb']} | {r['extra_mb']} |")
    print(f"| **total (first call after construction)** | **{result['total_seconds']:.1f}** | | "
          f"**{result['peak_extra_mb']}** |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", nargs="+", default=["smtnet-300w-tiny", "smtnet-300w-small"])
    p.add_argument("--data", default=DEFAULT_DATA, help="folder holding 300w/ (or 300w itself)")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads of every session, the calibration session's too (0: its default)")
    p.add_argument("--json", default=None, help="write all results here")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode: one model, JSON on stdout
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(profile(args.weights[0], args.data, args.threads)))
        return
    results = []
    for weights in args.weights:  # a fresh process each: peaks and allocator caches do not carry over
        out = subprocess.run([sys.executable, __file__, "--one", "--weights", weights, "--data", args.data,
                              "--threads", str(args.threads)], capture_output=True, text=True,
                             cwd=Path(__file__).parent)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{weights} failed:\n{out.stdout}\n{out.stderr}")
        results.append(json.loads(line[len("RESULT "):]))
        print_table(results[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
