"""Sparsity inference: constrained Bayesian optimization over a black-box ``evaluate``.

``search/`` knows nothing about models or schemes: it optimizes
``evaluate(sparsity) -> (accuracy, objective)`` under an accuracy constraint.
"""

from condensa.search.constraint import Constraint
from condensa.search.journal import Journal
from condensa.search.loop import search_sparsity
from condensa.search.plot import plot_search
from condensa.search.pool import Outcome, SerialPool, TrialPool
from condensa.search.proposer import (
    STRATEGIES,
    Answer,
    Proposal,
    Proposer,
    SearchProblem,
    register_strategy,
    strategy_names,
)
from condensa.search.ray_pool import RayPool
from condensa.search.result import SearchResult, SurrogateView
from condensa.search.trial import Trial
from condensa.search.two_stage import TwoStageSettings

__all__ = [
    "STRATEGIES",
    "Answer",
    "Constraint",
    "Journal",
    "Outcome",
    "Proposal",
    "Proposer",
    "RayPool",
    "SearchProblem",
    "SearchResult",
    "SerialPool",
    "SurrogateView",
    "Trial",
    "TrialPool",
    "TwoStageSettings",
    "plot_search",
    "register_strategy",
    "search_sparsity",
    "strategy_names",
]
