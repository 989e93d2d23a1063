"""Deprecated import path, kept for one release: the backends live in `facelandmarks_smt.runtime.backends`."""

from .runtime.backends import (BACKENDS, PRECISIONS, OrtRunner, TorchRunner, check_backend,  # noqa: F401
                               make_runner, set_torch_threads)
from .runtime.device import cpu_has_native_bf16  # noqa: F401
from .runtime.graphs import int8_graph  # noqa: F401
