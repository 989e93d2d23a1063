"""#16: the int8 graph with the quantised convolutions' outputs left in float (`quantize_from_ranges(...,
conv_outputs=False)`, built from tiny v6's shipped ranges: no new calibration), run by OpenVINO compiled for a
*static* batch of 1, against the library's QDQ graph (re-quantised outputs) and fp32, on the same 3,663
validation faces as the NNCF variants (201 held-out training faces + the 3,462 YouTube-Faces frames of
ytf/train). Why static: OpenVINO 2026.4.1 miscomputes the float-output graph when its batch is dynamic (or
with SNIPPETS_MODE=DISABLE): a convolution whose float output feeds both a Concat and the next BatchNorm
gets wrong values downstream (heatmap peaks 18 px off on one face); compiled static it agrees with
onnxruntime. Prints and writes JSON (argv[1])."""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov

from facelandmarks_smt import hub
from facelandmarks_smt.datasets import LandmarkDataset, load_datasets, split_dataset
from facelandmarks_smt.runtime.export import export_onnx
from facelandmarks_smt.runtime.quantize import quantize_from_ranges
from facelandmarks_smt.training.openvino_int8 import _compiled_infer, nme_per_face, validation_faces
from facelandmarks_smt.weights_io import load_model

D = "/work/shared/data/landmarks68"
path, expected = hub.resolve("weights/smtnet-300w-tiny.safetensors")
model, _ = load_model(path, sha256=expected)
ranges = json.loads(Path("weights/smtnet-300w-tiny.int8-ranges.json").read_text())["ranges"]
_, val = split_dataset(load_datasets([f"{D}/300w/afw", f"{D}/300w/helen/trainset", f"{D}/300w/lfpw/trainset"]),
                       0.1, seed=0)
val = LandmarkDataset.concat([val, load_datasets([f"{D}/ytf/train"])])
faces = validation_faces(val, model.config)
core = ov.Core()
S = model.config.input_size
out = {"faces": len(faces[0]), "openvino": ov.__version__, "weights": "smtnet-300w-tiny v6", "rows": []}
with tempfile.TemporaryDirectory() as tmp:
    fp32 = export_onnx(model, Path(tmp) / "fp32.onnx")
    graphs = {"fp32": fp32,
              "qdq (library)": quantize_from_ranges(fp32, Path(tmp) / "q.onnx", ranges, {}),
              "qdq float outputs": quantize_from_ranges(fp32, Path(tmp) / "qf.onnx", ranges, {}, conv_outputs=False)}
    for name, g, static in [("fp32", graphs["fp32"], False), ("qdq (library)", graphs["qdq (library)"], False),
                            ("qdq float outputs, static batch 1", graphs["qdq float outputs"], True),
                            ("qdq float outputs, dynamic batch", graphs["qdq float outputs"], False)]:
        m = core.read_model(str(g))
        if static:
            m.reshape({m.inputs[0]: [1, 3, S, S]})
        compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "1"})
        t = time.time()
        nme = float(nme_per_face(_compiled_infer(compiled), faces, model.config).mean())
        # agreement with onnxruntime on the same graph (first 20 faces): max |heatmap difference|
        sess = ort.InferenceSession(str(g), providers=["CPUExecutionProvider"])
        infer = _compiled_infer(compiled)
        diff = max(float(np.abs(sess.run(None, {"input": faces[0][i:i + 1]})[0] - infer(faces[0][i:i + 1])[0]).max())
                   for i in range(20))
        row = {"graph": name, "nme": round(nme, 4), "max_abs_heatmap_diff_vs_onnxruntime": round(diff, 4),
               "seconds": round(time.time() - t, 1)}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
if len(sys.argv) > 1:
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")
