"""Deprecated import path, kept for one release: ONNX export lives in `facelandmarks_smt.runtime.export`
(graphs) and `facelandmarks_smt.runtime.graphs` (weights files), its command in `facelandmarks_smt.cli.export`.
``python -m facelandmarks_smt.export --weights W --out model.onnx`` still works."""

from .cli.export import add_export_parser, main, run_export  # noqa: F401
from .runtime.export import (EXPORT_VERSION, INPUT_NAME, OPSET, OUTPUT_NAMES, _cpu_fp32_copy,  # noqa: F401
                             _LastStack, cache_dir, cached_onnx, export_onnx, onnx_config)
from .runtime.graphs import export_weights as export  # noqa: F401
from .fileio import atomic_write as _atomic_write  # noqa: F401
from .weights_io import sha256_file  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
