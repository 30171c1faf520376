"""Sparsity inference: constrained Bayesian optimization over a black-box ``evaluate``.

``search/`` knows nothing about models or schemes: it optimizes
``evaluate(sparsity) -> (accuracy, objective)`` under an accuracy constraint.
"""

from condensa.search.constraint import Constraint
from condensa.search.journal import Journal
from condensa.search.loop import search_sparsity
from condensa.search.plot import plot_search
from condensa.search.result import SearchResult, SurrogateView
from condensa.search.trial import Trial
from condensa.search.two_stage import TwoStageSettings

__all__ = [
    "Constraint",
    "Journal",
    "SearchResult",
    "SurrogateView",
    "Trial",
    "TwoStageSettings",
    "plot_search",
    "search_sparsity",
]
