"""Structured pruning: :mod:`.graph` holds the functions (``prune_(model, PruneConfig(...))``),
:mod:`.cli` the Hydra entry point ``python -m compress.prune`` (which imports downward only)."""
from .graph import PruneConfig, group_widths, plan, prune_, prune_tdf_, uniform_widths

__all__ = ["PruneConfig", "prune_", "prune_tdf_", "group_widths", "plan", "uniform_widths"]
