"""#16: the shipped int8 path of tiny v6 on OpenVINO (the QDQ graph built from the shipped int8 ranges)
on the same 3,663 validation faces as the NNCF variants (openvino_int8_nncf_tiny_v6_variants.sh), so the
two int8 models are compared on faces that selected neither. Prints fp32 and int8 NME; writes JSON."""

import json
import sys

import openvino as ov

from facelandmarks_smt import hub
from facelandmarks_smt.datasets import LandmarkDataset, load_datasets, split_dataset
from facelandmarks_smt.runtime.graphs import int8_graph
from facelandmarks_smt.training.openvino_int8 import _compiled_infer, nme_per_face, validation_faces
from facelandmarks_smt.weights_io import load_model, sha256_file

D = "/work/shared/data/landmarks68"
path, expected = hub.resolve("weights/smtnet-300w-tiny.safetensors")
model, _ = load_model(path, sha256=expected)
sha = sha256_file(path)
_, val = split_dataset(load_datasets([f"{D}/300w/afw", f"{D}/300w/helen/trainset", f"{D}/300w/lfpw/trainset"]),
                       0.1, seed=0)
val = LandmarkDataset.concat([val, load_datasets([f"{D}/ytf/train"])])
faces = validation_faces(val, model.config)
core = ov.Core()
graph = int8_graph(model, sha)
compiled = core.compile_model(core.read_model(str(graph)) if not isinstance(graph, bytes) else
                              core.read_model(graph, ov.Tensor()), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
nme = float(nme_per_face(_compiled_infer(compiled), faces, model.config).mean())
out = {"faces": len(faces[0]), "graph": "QDQ int8 from the shipped ranges, run by OpenVINO", "nme_int8_qdq": round(nme, 4)}
print(json.dumps(out))
if len(sys.argv) > 1:
    open(sys.argv[1], "w").write(json.dumps(out, indent=1) + "\n")
