"""YuNet's network on OpenVINO's CPU plugin, with the post-processing of OpenCV's ``cv2.FaceDetectorYN``
written out in numpy, so that `face_detection.YuNetFaceDetector` gives the same faces faster.

Why: OpenCV's DNN module ran YuNet on a 640x480 frame in 13-15 ms on the 2-core AVX-512 machine,
OpenVINO's CPU plugin runs the same ONNX graph in about 3-4 ms (docs/benchmarks.md, "YuNet on
OpenVINO"), and the face detector is most of the whole-image path with `tiny`.

The post-processing follows OpenCV's ``FaceDetectorYNImpl`` (modules/objdetect/src/face_detect.cpp):
the BGR image, zero-padded right and bottom to multiples of 32, goes in unscaled as an NCHW float
blob (here OpenVINO's pre-processing makes that blob from the padded uint8 RGB image); for each stride ``s`` in 8, 16, 32 the anchor in row ``r``, column ``c`` of the ``padW/s``-wide grid
scores ``sqrt(clip(cls) * clip(obj))``, its box is centred at ``((c, r) + bbox[:2]) * s`` with size
``exp(bbox[2:]) * s`` and keypoint ``k`` at ``((c, r) + kps[2k:2k+2]) * s``; anchors under the score
threshold are dropped and, when more than one is left, non-maximum suppression on the boxes truncated
to integers (as OpenCV's ``Rect2i``) keeps at most ``top_k``. Rows are OpenCV's 15 numbers:
``x, y, w, h``, five ``(x, y)`` keypoints, score. tests/test_yunet_openvino.py checks both agree.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

STRIDES = (8, 16, 32)
DIVISOR = 32
INSTALL_HINT = "pip install 'facelandmarks_smt[openvino]'"


def padded_size(width: int, height: int) -> tuple[int, int]:
    """The size YuNet runs at: each side rounded up to a multiple of 32."""
    return ((width - 1) // DIVISOR + 1) * DIVISOR, ((height - 1) // DIVISOR + 1) * DIVISOR


def yunet_blob(bgr: np.ndarray) -> np.ndarray:
    """``(1, 3, padH, padW)`` float32 blob of a BGR uint8 image, zero-padded right and bottom: what
    OpenCV feeds YuNet (the OpenVINO model takes `padded_rgb` and does this itself)."""
    h, w = bgr.shape[:2]
    pw, ph = padded_size(w, h)
    blob = np.zeros((1, 3, ph, pw), np.float32)
    blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
    return blob


def padded_rgb(rgb: np.ndarray) -> np.ndarray:
    """``(1, padH, padW, 3)`` uint8: the RGB image zero-padded right and bottom, the OpenVINO model's
    input (its pre-processing swaps to BGR, converts to float and to NCHW inside the runtime)."""
    h, w = rgb.shape[:2]
    pw, ph = padded_size(w, h)
    out = np.zeros((1, ph, pw, 3), np.uint8)
    out[0, :h, :w] = rgb
    return out


def decode_yunet(outputs: dict, pad_width: int, pad_height: int, score_threshold: float, nms_threshold: float,
                 top_k: int) -> np.ndarray:
    """OpenCV's rows ``(N, 15)`` float32 from YuNet's twelve outputs (``cls_8`` ... ``kps_32``, by name)."""
    rows = []
    for s in STRIDES:
        cols = pad_width // s
        cls = np.clip(np.asarray(outputs[f"cls_{s}"], np.float32).reshape(-1), 0.0, 1.0)
        obj = np.clip(np.asarray(outputs[f"obj_{s}"], np.float32).reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if len(keep) == 0:
            continue
        bbox = np.asarray(outputs[f"bbox_{s}"], np.float32).reshape(-1, 4)[keep]
        kps = np.asarray(outputs[f"kps_{s}"], np.float32).reshape(-1, 5, 2)[keep]
        grid = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)  # (c, r)
        centre = (grid + bbox[:, :2]) * s
        size = np.exp(bbox[:, 2:]) * s
        points = (kps + grid[:, None, :]) * s
        rows.append(np.concatenate([centre - size / 2, size, points.reshape(-1, 10), score[keep, None]], axis=1))
    if not rows:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(rows).astype(np.float32)
    if len(faces) > 1:
        boxes = np.trunc(faces[:, :4]).astype(np.int64).tolist()  # C++ int(): towards zero
        keep = cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), float(score_threshold), float(nms_threshold),
                                eta=1.0, top_k=int(top_k))
        faces = faces[np.asarray(keep, np.int64).reshape(-1)]
    return faces


#: A padded input size seen this many times gets a model compiled for it alone (static shapes run faster than
#: the dynamic model, and compile in about 0.1-0.2 s: docs/benchmarks.md); a video's frames all have one size,
#: a folder of photos many, each seen once, for which the dynamic model stays.
STATIC_AFTER = 2
#: At most this many static sizes are kept (the least recently used is dropped).
MAX_STATIC_SIZES = 4


class YuNetOpenVINO:
    """YuNet's ONNX graph compiled by OpenVINO's CPU plugin: once with a dynamic input size, and once more
    for each padded size that keeps coming (`STATIC_AFTER`, at most `MAX_STATIC_SIZES`). Each thread gets
    its own infer requests, so one instance serves many threads. ``threads``: OpenVINO's inference
    threads (None: its choice, the physical cores)."""

    def __init__(self, model_path: str | Path, threads: int | None = None) -> None:
        try:
            import openvino
        except ImportError as e:
            raise ImportError(f"runtime='openvino' needs the OpenVINO runtime: {INSTALL_HINT} ({e})") from e
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = str(int(threads))
        self.core = openvino.Core()
        model = self.core.read_model(str(model_path))
        # the pre-processing OpenCV does in Python (RGB -> BGR, uint8 -> float, HWC -> CHW) runs inside
        # OpenVINO: the caller hands over the padded uint8 image, a quarter of the float blob's bytes
        ppp = openvino.preprocess.PrePostProcessor(model)
        ppp.input().tensor().set_element_type(openvino.Type.u8).set_layout(openvino.Layout("NHWC"))
        ppp.input().model().set_layout(openvino.Layout("NCHW"))
        ppp.input().preprocess().reverse_channels().convert_element_type(openvino.Type.f32)
        self._model = ppp.build()
        self.compiled = self.core.compile_model(self._model, "CPU", self.config)
        self._static: dict[tuple[int, int], object] = {}  # padded (height, width) -> compiled, oldest use first
        self._seen: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _compiled_for(self, height: int, width: int):
        """The model to run a padded ``height x width`` image with: its static model when the size has come
        `STATIC_AFTER` times (compiled then), else the dynamic one."""
        size = (height, width)
        with self._lock:
            compiled = self._static.pop(size, None)
            if compiled is not None:
                self._static[size] = compiled  # most recently used last
                return compiled
            self._seen[size] = seen = self._seen.get(size, 0) + 1
            if seen < STATIC_AFTER:
                if len(self._seen) > 64:  # a folder of many sizes: forget the counts, not the models
                    self._seen = {size: seen}
                return self.compiled
            model = self._model.clone()
            model.reshape({model.inputs[0]: [1, height, width, 3]})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self._static[size] = compiled
            if len(self._static) > MAX_STATIC_SIZES:
                self._static.pop(next(iter(self._static)))
            return compiled

    def detect(self, rgb: np.ndarray, score_threshold: float, nms_threshold: float, top_k: int) -> np.ndarray:
        """OpenCV's ``FaceDetectorYN.detect`` rows ``(N, 15)`` for an RGB uint8 image (OpenCV's takes BGR)."""
        image = padded_rgb(rgb)
        compiled = self._compiled_for(image.shape[1], image.shape[2])
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        request = requests.get(id(compiled))
        if request is None:
            if len(requests) > MAX_STATIC_SIZES + 1:  # requests of dropped static models
                requests.clear()
            request = requests[id(compiled)] = compiled.create_infer_request()
        out = request.infer({0: image}, share_inputs=True, share_outputs=True)
        named = {name: out[port] for port in compiled.outputs for name in port.get_names()}
        return decode_yunet(named, image.shape[2], image.shape[1], score_threshold, nms_threshold, top_k)


__all__ = ["YuNetOpenVINO", "STATIC_AFTER", "MAX_STATIC_SIZES", "decode_yunet", "yunet_blob", "padded_rgb", "padded_size", "STRIDES"]
