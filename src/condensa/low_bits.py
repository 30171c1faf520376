"""Which Linear layers are stored with fewer bits, so that a file meets a size.

int8 weights take one byte per parameter, so an fp32 model stored in int8 is at best
4x smaller, and its scales, norms and metadata make it a little less. Going further
means storing some layers in fewer bits. This module ranks the Linears by how much
group-wise round-to-nearest at ``bits`` changes their outputs on calibration inputs
(:func:`weight_errors`). :func:`fewest_to_save` then takes the least sensitive first,
until their saving over per-row int8 reaches the bytes to save. The caller quantizes
those layers at ``bits`` (``schemes.Quantize("int4", group_size=128, include=...)``,
GPTQ or round-to-nearest) and the rest at int8.

Bytes are counted as :func:`condensa.save` stores them: ``bits / 8`` per weight, and a
float32 scale per row (int8), or per group a float32 scale and an int16 zero point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

from torch import nn

from condensa.errors import ConfigError
from condensa.functional.groups import check_group
from condensa.inputs import Compare, relative_errors
from condensa.operators import GroupAffine


def stored_bytes(linear: nn.Linear, dtype: str = "int8", group_size: int | None = None) -> int:
    """Bytes of ``linear``'s weight stored at ``dtype`` (per-row int8 without a group size).

    Raises:
        ConfigError: a dtype or group size :class:`~condensa.schemes.Quantize` refuses.

    """
    bits, _ = check_group(dtype, group_size)
    rows, cols = linear.weight.shape
    if group_size is None and bits == 8:  # Quantize("int8"): a symmetric scale per row
        return rows * cols + 4 * rows
    groups = 1 if group_size is None else math.ceil(cols / min(group_size, cols))
    return math.ceil(rows * cols * bits / 8) + 6 * rows * groups


def saving(linear: nn.Linear, bits_dtype: str = "int4", group_size: int | None = 128) -> int:
    """Bytes saved by storing ``linear`` at ``bits_dtype`` instead of per-row int8."""
    return stored_bytes(linear) - stored_bytes(linear, bits_dtype, group_size)


def weight_errors(
    model: nn.Module,
    batches: Sequence[Any],
    *,
    dtype: str = "int4",
    group_size: int = 128,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Each Linear's relative output error when its weight is rounded to ``dtype`` groups.

    ``||x (W - Q(W))ᵀ||² / ||x Wᵀ||²`` summed over the inputs each layer sees when the
    float ``model`` runs ``batches``. ``model`` is not modified.

    Args:
        model: the float model.
        batches: calibration inputs.
        dtype: ``"int4"`` or ``"int8"``, asymmetric, ``group_size`` inputs per scale.
        group_size: inputs per scale.
        names: the Linears to rank (default: every ``nn.Linear``).

    Raises:
        ConfigError: a name that is not a Linear of ``model``, or no Linear at all.

    """
    rounding = GroupAffine(dtype, group_size=group_size)  # checks both
    modules = dict(model.named_modules())
    chosen = (
        list(names)
        if names is not None
        else [n for n, m in modules.items() if isinstance(m, nn.Linear)]
    )
    bad = [n for n in chosen if not isinstance(modules.get(n), nn.Linear)]
    if bad or not chosen:
        raise ConfigError(
            f"weight_errors ranks nn.Linear layers; {bad or 'none'} "
            f"{'are not Linear layers of the model' if bad else 'found'}"
        )

    def compare(linear: nn.Linear) -> Compare:
        weight = linear.weight.detach().float()
        delta = weight - rounding.project(weight)  # the layer's rounding error
        return lambda x, _: (x.float() @ delta.T, x.float() @ weight.T)

    return relative_errors(
        model, batches, {n: compare(cast(nn.Linear, modules[n])) for n in chosen}
    )


def fewest_to_save(
    model: nn.Module,
    errors: Mapping[str, float],
    need: int,
    *,
    dtype: str = "int4",
    group_size: int = 128,
) -> list[str]:
    """The fewest Linears, smallest error first, whose storage at ``dtype`` saves ``need`` bytes.

    Args:
        model: the model the names belong to.
        errors: :func:`weight_errors` (the candidates and their order).
        need: bytes to save over per-row int8 (nothing is chosen when ``need <= 0``).
        dtype: how the chosen layers are stored (``"int4"``).
        group_size: inputs per scale of the chosen layers.

    Raises:
        ConfigError: even every candidate together does not save ``need`` bytes.

    """
    if need <= 0:
        return []
    modules = dict(model.named_modules())
    chosen, saved = [], 0
    for name in sorted(errors, key=lambda n: (errors[n], n)):
        linear = modules[name]
        assert isinstance(linear, nn.Linear)
        gain = saving(linear, dtype, group_size)
        if gain <= 0:
            continue
        chosen.append(name)
        saved += gain
        if saved >= need:
            return chosen
    raise ConfigError(
        f"storing all {len(errors)} candidate layers at {dtype} (group {group_size}) saves "
        f"{saved:,} bytes, less than the {need:,} needed; lower the target ratio"
    )
