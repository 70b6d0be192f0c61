"""Scoring explanations: simulators predict activations from an explanation, scores correlate.

Public surface (importing it loads no torch and no embedding model):

- :func:`simulation`: the inspect ``@scorer`` (value = dict of correlations, per-token
  predictions in metadata) and :func:`simulation_metrics`.
- :func:`score_simulation` → :class:`SimulationScores`, and the pure functions under it.
- :func:`make_simulator`, :func:`build_scorers`, :data:`SIMULATORS`, :data:`SCORERS`.
- :class:`Simulation`, :class:`Simulator`: the simulator contract.
"""

from neuronbench.scorers.correlation import (
    GROUPS,
    SimulationScores,
    Unscorable,
    absolute_deviation_explained,
    correlation_score,
    fit_linear_calibration,
    r2,
    score_simulation,
)
from neuronbench.scorers.metrics import bootstrap_ci, frac_ge, mean_by_layer, n_failed, n_unscored
from neuronbench.scorers.registry import (
    SCORERS,
    SIMULATORS,
    SimulatorSpec,
    build_scorers,
    make_simulator,
)
from neuronbench.scorers.simulation import simulation, simulation_metrics
from neuronbench.scorers.simulators.base import Simulation, Simulator

__all__ = [
    "GROUPS",
    "SCORERS",
    "SIMULATORS",
    "Simulation",
    "SimulationScores",
    "Simulator",
    "SimulatorSpec",
    "Unscorable",
    "absolute_deviation_explained",
    "bootstrap_ci",
    "build_scorers",
    "correlation_score",
    "fit_linear_calibration",
    "frac_ge",
    "make_simulator",
    "mean_by_layer",
    "n_failed",
    "n_unscored",
    "r2",
    "score_simulation",
    "simulation",
    "simulation_metrics",
]
