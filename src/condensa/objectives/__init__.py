"""Objectives measured on what would be deployed: speed, file size, MACs, or any callable.

Each objective is called as ``objective(model, example_inputs) -> Measurement``; the
built-in ones and those added with :func:`register_objective` are known by name.
"""

from condensa.objectives.measurement import Measurement
from condensa.objectives.registry import (
    build_objective,
    objective_class,
    objective_names,
    objective_options,
    register_objective,
)
from condensa.objectives.size import MAC_MODES, FileSize, Macs
from condensa.objectives.speed import (
    Latency,
    Throughput,
    compare_throughput,
    threads,
)
from condensa.thinning.deploy import deployable  # lives in thinning; kept here for old imports

# isort: off
from condensa.objectives.decode import Decode, Prefill  # registered last: listing order

# isort: on

__all__ = [
    "MAC_MODES",
    "FileSize",
    "Latency",
    "compare_throughput",
    "Decode",
    "Prefill",
    "Macs",
    "Measurement",
    "Throughput",
    "build_objective",
    "objective_class",
    "objective_names",
    "objective_options",
    "register_objective",
    "deployable",
    "threads",
]
