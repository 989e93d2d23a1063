"""#16: tiny's `detect` with one box (batch 1, the default OpenVINO int8 path) with the decoder merged into the
static network model (`openvino_backend.with_decoder`, one call) against the network and the decoder as two
compiled models (as before 2026-12-08's last change). One process, both detectors, 8 alternating rounds of 100
calls; prints each round's median ms. Run from the repository root on a quiet machine:

    python benchmarks/decoder_merged_ab.py
"""
import time, statistics, sys, numpy as np
sys.path.insert(0, "benchmarks")
from facelandmarks_smt import Detector
from facelandmarks_smt.runtime.openvino_backend import openvino_core, compile_config
from facelandmarks_smt.runtime.export import export_decoder_onnx
from inference_speed import frame_640x480
frame, box = frame_640x480()
a = Detector.from_pretrained("smtnet-300w-tiny", threads=2)
b = Detector.from_pretrained("smtnet-300w-tiny", threads=2)
r = b._runner; del r._models["decoded"]
r.compiled_decoder = openvino_core().compile_model(openvino_core().read_model(export_decoder_onnx(r.decoder.theta, r.decoder.stride)), "CPU", compile_config("fp32", 2))
assert np.allclose(a.detect(frame, box[None])[0].landmarks, b.detect(frame, box[None])[0].landmarks, atol=1e-3)
def med(f, n=100):
    for _ in range(5): f()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3
res = {"merged": [], "separate": []}
for i in range(8):
    for name, det in (("merged", a), ("separate", b)) if i % 2 == 0 else (("separate", b), ("merged", a)):
        res[name].append(med(lambda: det.detect(frame, box[None])))
for k, v in res.items(): print(k, "detect b1 rounds:", " ".join("%.2f" % x for x in v), "median %.2f" % statistics.median(v))
