"""How a scheme's sparsity is spread over layers: global ranking, uniform, or explicit."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from condensa.errors import ConfigError, SelectionError
from condensa.functional import check_sparsity, n_keep, topk_mask
from condensa.operators import PruneOperator
from condensa.schemes.selection import Target

ALLOCATIONS = ("global", "uniform")
"""Named allocation policies; a mapping ``{module regex or FQN: sparsity}`` is the third kind."""

AllocationSpec = str | Mapping[str, float]


def check_allocation(allocation: object) -> AllocationSpec:
    """Validate an allocation: ``"global"``, ``"uniform"`` or a ``{pattern: sparsity}`` mapping."""
    if isinstance(allocation, str):
        if allocation not in ALLOCATIONS:
            raise ConfigError(
                f"unknown allocation {allocation!r}; valid: {', '.join(ALLOCATIONS)} "
                "or a mapping {module regex: sparsity}"
            )
        return allocation
    if isinstance(allocation, Mapping):
        if not allocation:
            raise ConfigError("an explicit allocation mapping must not be empty")
        out: dict[str, float] = {}
        for key, value in allocation.items():
            if not isinstance(key, str):
                raise ConfigError(f"allocation keys must be module names or regexes, got {key!r}")
            out[key] = check_sparsity(value, name=f"sparsity for {key!r}")
        return out
    raise ConfigError(f"allocation must be 'global', 'uniform' or a mapping, got {allocation!r}")


def allocate(
    targets: list[Target],
    weights: Mapping[str, torch.Tensor],
    operator: PruneOperator,
    sparsity: float,
    allocation: AllocationSpec,
) -> dict[str, float]:
    """Sparsity per target FQN.

    - ``"uniform"``: every target gets ``sparsity``.
    - ``"global"``: units (weights, blocks, channels) of all targets are ranked
      together by ``operator.unit_scores``; the lowest are pruned until the pruned
      *weights* reach ``numel - n_keep(numel, sparsity)`` over all targets (a prefix of
      the ranking, i.e. one global threshold). Each target's best unit is protected so
      no layer is emptied. For unstructured pruning the count is exact. Operators with
      ``normalize_globally`` (channels) rank scores divided by their layer's mean.
    - mapping: each target takes the sparsity of the first key that equals its
      module FQN or tensor FQN or fully matches its module FQN as a regex; unmatched
      targets get ``sparsity``.

    Returns:
        ``{fqn: sparsity}`` such that ``n_keep(n_units, s)`` gives each layer's kept units.

    Raises:
        SelectionError: a mapping key matches no target.

    """
    if isinstance(allocation, Mapping):
        return _explicit(targets, sparsity, allocation)
    if allocation == "uniform" or len(targets) == 1:
        return {t.fqn: sparsity for t in targets}
    return _global(targets, weights, operator, sparsity)


def key_matches(key: str, module_name: str, *names: str) -> bool:
    """Whether an allocation key applies to a module.

    It does when it equals ``module_name`` (or one of ``names``) or fully matches
    ``module_name`` as a regex.
    """
    return key in (module_name, *names) or re.fullmatch(key, module_name) is not None


def lowest_reaching(scores: torch.Tensor, sizes: torch.Tensor, budget: float) -> torch.Tensor:
    """Indices of the fewest lowest-scoring units whose sizes add up to at least ``budget``.

    A prefix of the ascending ranking (ties by position), i.e. one global threshold; the
    whole ranking when it cannot reach ``budget``. "At least", like `n_keep`: a sparsity
    is a floor on what is removed.
    """
    if budget <= 0:
        return scores.new_zeros(0, dtype=torch.long)
    order = torch.argsort(scores, stable=True)
    below = int((torch.cumsum(sizes[order], dim=0) < budget).sum())
    return order[: below + 1]


def _explicit(
    targets: list[Target], default: float, mapping: Mapping[str, float]
) -> dict[str, float]:
    def matches(key: str, t: Target) -> bool:
        return key_matches(key, t.module_name, t.fqn)

    unused = [k for k in mapping if not any(matches(k, t) for t in targets)]
    if unused:
        raise SelectionError(
            f"allocation key(s) {unused} match no target; targets: {[t.fqn for t in targets][:12]}"
        )
    out = {}
    for t in targets:
        key = next((k for k in mapping if matches(k, t)), None)
        out[t.fqn] = default if key is None else mapping[key]
    return out


def _global(
    targets: list[Target],
    weights: Mapping[str, torch.Tensor],
    operator: PruneOperator,
    sparsity: float,
) -> dict[str, float]:
    scores, sizes, n_units = [], [], []
    for t in targets:
        s = operator.unit_scores(weights[t.fqn])  # (n_units,)
        if operator.normalize_globally and float(s.mean()) > 0:
            s = s / s.mean()
        # protect the best unit of each layer (lowest index among equals)
        protected = int(torch.argmax(s))
        scores.append(torch.cat([s[:protected], s[protected + 1 :]]))
        sizes.append(operator.unit_numel(weights[t.fqn]))
        n_units.append(s.numel())
    total = sum(int(weights[t.fqn].numel()) for t in targets)
    budget = total - n_keep(total, sparsity)  # weights to prune
    lengths = [int(s.numel()) for s in scores]
    if len(set(sizes)) == 1:
        # equal unit sizes (weights, blocks of one shape): the lowest `count` scores,
        # ties by (layer order, unit order), by linear-time selection
        count = min(-(-budget // sizes[0]), sum(lengths))  # ceil: at least the budget
        pruned = topk_mask(-torch.cat(scores), count) if count else None
    else:
        all_scores = torch.cat(scores)
        all_sizes = torch.cat(
            [torch.full((n,), z, dtype=torch.long) for n, z in zip(lengths, sizes, strict=True)]
        )
        pruned = torch.zeros(all_scores.numel(), dtype=torch.bool)
        pruned[lowest_reaching(all_scores, all_sizes, budget)] = True
    counts = (
        [0] * len(targets)
        if pruned is None
        else [int(torch.count_nonzero(p)) for p in torch.split(pruned, lengths)]
    )
    return {t.fqn: counts[i] / n_units[i] for i, t in enumerate(targets)}
