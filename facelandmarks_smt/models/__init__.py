"""SMT-Net architecture."""

from .smtnet import SMTNet, count_parameters

__all__ = ["SMTNet", "count_parameters"]
