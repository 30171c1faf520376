"""A scheme at a fraction of its sparsity: the intermediate steps of gradual pruning."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from condensa.errors import ConfigError
from condensa.functional import check_sparsity
from condensa.schemes.base import Scheme
from condensa.schemes.builtins import Compose


def scaled(scheme: Scheme, fraction: float) -> Scheme:
    """``scheme`` with every sparsity multiplied by ``fraction`` in ``[0, 1]``.

    Layer selection, allocation and bound dependency groups are kept; parts without a
    sparsity (quantization, N:M) are returned unchanged, so they apply in full from
    the start. ``fraction == 1`` returns ``scheme`` itself.

    Raises:
        ConfigError: ``fraction`` outside ``[0, 1]``, or a user scheme whose sparsity
            cannot be varied (it has none of ``sparsity``, ``to_dict``).

    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ConfigError(f"fraction must be a number in [0, 1], got {fraction!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"fraction must be in [0, 1], got {fraction!r}")
    if fraction == 1.0:
        return scheme
    if isinstance(scheme, Compose):
        composed = copy.copy(scheme)
        composed.schemes = [scaled(s, fraction) for s in scheme.schemes]
        return composed
    from condensa.schemes.spec import Rules

    if isinstance(scheme, Rules):
        return Rules(_scale_spec(scheme.to_dict(), fraction))
    sparsity = getattr(scheme, "sparsity", None)
    if isinstance(sparsity, float):
        out = copy.copy(scheme)
        out.sparsity = check_sparsity(sparsity * fraction)  # type: ignore[attr-defined]
        options = getattr(scheme, "_options", None)
        if isinstance(options, dict) and "sparsity" in options:
            out._options = {**options, "sparsity": out.sparsity}  # type: ignore[attr-defined]
        return out
    if sparsity is None and hasattr(scheme, "plan"):
        return scheme  # no sparsity to scale: quantization, N:M, or a user scheme
    raise ConfigError(
        f"cannot scale the sparsity of {scheme!r}: give it a float 'sparsity' attribute"
    )


def _scale_spec(spec: Any, fraction: float) -> Any:
    if isinstance(spec, Mapping):
        return {
            k: (
                v * fraction
                if k == "sparsity" and isinstance(v, (int, float))
                else _scale_spec(v, fraction)
            )
            for k, v in spec.items()
        }
    if isinstance(spec, list):
        return [_scale_spec(v, fraction) for v in spec]
    return spec
