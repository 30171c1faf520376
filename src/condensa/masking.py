"""Compression held inside a model as ``torch.nn.utils.parametrize`` parametrizations.

A compressed tensor keeps its original ``nn.Parameter`` (so optimizers created
earlier keep working) under ``module.parametrizations.<name>.original``; the forward
pass sees it through Condensa parametrizations, the registered stored formats of
:mod:`condensa.formats` (:class:`Mask`, :class:`FakeCast`, :class:`FakeQuantInt8`
built in). The operators' output picks its parametrization from that registry.

Every parametrization's configuration lives in registered buffers, so a
``state_dict`` describes it completely and :func:`restore` rebuilds it in a fresh
model. Nothing is stored on user modules besides what ``parametrize`` itself adds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa.errors import ConfigError
from condensa.formats import (
    CAST_CODES,
    FakeCast,
    FakeQuantInt8,
    Mask,
    Storage,
    StoredFormat,
    format_keyed,
    formats,
    holding,
    kept_by,
    storing,
)
from condensa.norms import follow_mask, follows_mask, freeze, is_channel_norm
from condensa.operators import ChainedTensor, Compressed, PrunedTensor
from condensa.schemes import Plan

__all__ = [
    "CAST_CODES",
    "CONDENSA_TYPES",
    "FakeCast",
    "FakeQuantInt8",
    "Mask",
    "Storage",
    "apply_plan",
    "bake",
    "copy_model",
    "masks",
    "register",
    "restore",
    "storage",
    "stored_tensor",
    "storing_format",
]

CONDENSA_TYPES = (StoredFormat,)
"""Base classes of Condensa's parametrizations (for ``isinstance``)."""


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy that shares no parametrized class with ``model``.

    ``parametrize`` gives each parametrized module a class of its own holding one
    property per parametrized tensor, and ``copy.deepcopy`` keeps that class, so
    adding or removing a parametrization on the copy would change the original's
    class too (a PyTorch pitfall). Every such class in the copy is replaced by an
    identical private one.
    """
    copied = copy.deepcopy(model)
    for module in copied.modules():
        if parametrize.is_parametrized(module):
            cls = type(module)
            namespace = {
                k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")
            }
            module.__class__ = type(cls.__name__, cls.__bases__, namespace)
    return copied


def register(module: nn.Module, tensor_name: str, parametrization: nn.Module) -> None:
    """Register a Condensa parametrization on ``module.<tensor_name>``.

    A keep-mask on a LayerNorm's scale also makes the norm normalize over its kept
    channels only (:mod:`condensa.norms`): what removing the masked channels computes.
    """
    if tensor_name == "weight" and isinstance(parametrization, Mask) and is_channel_norm(module):
        follow_mask(module)
    parametrize.register_parametrization(module, tensor_name, parametrization)


def _parametrizations(
    compressed: Compressed, has_bias: bool, name: str = "weight"
) -> list[tuple[str, nn.Module]]:
    """``(tensor name, parametrization)`` pairs that hold ``compressed`` for tensor ``name``."""
    if isinstance(compressed, ChainedTensor):
        return [p for part in compressed.parts for p in _parametrizations(part, has_bias, name)]
    pairs: list[tuple[str, nn.Module]] = [(name, holding(compressed))]
    bias_mask = compressed.bias_mask if isinstance(compressed, PrunedTensor) else None
    if bias_mask is not None and has_bias and name == "weight":
        pairs.append(("bias", Mask(bias_mask)))
    return pairs


def apply_plan(
    model: nn.Module, plan: Plan, compressed: Mapping[str, Compressed] | None = None
) -> None:
    """Compress ``model`` in place as ``plan`` says (direct compression).

    Every operator is checked and π computed for every target *before* the model is
    touched. Tensors not yet parametrized get their stored value set to ``Δ(π(w))``;
    then the parametrizations are registered. If registration fails part-way, what
    was added is rolled back.

    Args:
        model: the model the plan was made for.
        plan: the plan.
        compressed: π's result per target FQN when a method computed it itself (a
            one-shot method's reconstructed weights and masks); default ``plan.compress()``.

    Raises:
        CondensaError: from the operators' checks; the model is then unchanged.

    """
    compressed = plan.compress() if compressed is None else compressed
    projected = {e.target.fqn: e.operator.decompress(compressed[e.target.fqn]) for e in plan}
    undo: list[tuple[nn.Module, str, torch.Tensor]] = []
    try:
        for entry in plan:
            module = entry.target.module
            has_bias = isinstance(getattr(module, "bias", None), torch.Tensor)
            pairs = _parametrizations(
                compressed[entry.target.fqn], has_bias, entry.target.param_name
            )
            for tensor_name, param in pairs:
                if not parametrize.is_parametrized(module, tensor_name):
                    tensor = getattr(module, tensor_name)
                    undo.append((module, tensor_name, tensor.detach().clone()))
                    with torch.no_grad():
                        if tensor_name == entry.target.param_name:
                            tensor.copy_(projected[entry.target.fqn])
                        elif isinstance(param, Mask):
                            tensor.mul_(param.mask)
                register(module, tensor_name, param)
                if tensor_name == entry.target.param_name:
                    # tied weights: every holder of the stored tensor sees it compressed
                    for alias, alias_name in entry.target.aliases:
                        undo.append(
                            (alias, alias_name, getattr(alias, alias_name).detach().clone())
                        )
                        parametrize.register_parametrization(alias, alias_name, param)
    except Exception:
        for module, tensor_name, saved in reversed(undo):
            if parametrize.is_parametrized(module, tensor_name):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)
            with torch.no_grad():
                getattr(module, tensor_name).copy_(saved)
        raise


def _lists(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.ModuleList]]:
    """Yield ``(module fqn, module, tensor name, ParametrizationList)`` per parametrized tensor."""
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for tensor_name, plist in module.parametrizations.items():
                yield name, module, tensor_name, plist


def _fqn(module_name: str, tensor_name: str) -> str:
    return f"{module_name}.{tensor_name}" if module_name else tensor_name


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{tensor fqn: bool mask}`` of every masked tensor (stacked masks combined)."""
    out: dict[str, torch.Tensor] = {}
    for module_name, _, tensor_name, plist in _lists(model):
        combined = kept_by(plist)
        if combined is not None:
            out[_fqn(module_name, tensor_name)] = combined
    return out


def stored_tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """The tensor object behind ``module.<name>``: a parametrization's ``original``, else itself.

    Two modules whose stored tensors are the same object share one weight (tied).
    """
    if parametrize.is_parametrized(module, name):
        return module.parametrizations[name].original  # type: ignore[index,union-attr]
    found = module._parameters.get(name)
    return found if found is not None else module._buffers.get(name)


def storing_format(module: nn.Module, tensor_name: str) -> StoredFormat | None:
    """The parametrization of ``module.<tensor_name>`` that decides its storage, if any."""
    if not parametrize.is_parametrized(module, tensor_name):
        return None
    plist = list(module.parametrizations[tensor_name])  # type: ignore[index]
    found = storing([type(p) for p in plist])
    return None if found is None else plist[found]


def storage(module: nn.Module, tensor_name: str, tensor: torch.Tensor | None = None) -> Storage:
    """The storage of ``module.<tensor_name>`` (its value ``tensor``, when at hand)."""
    tensor = getattr(module, tensor_name) if tensor is None else tensor
    deciding = storing_format(module, tensor_name)
    stored = None if deciding is None else deciding.storage(tensor)
    plain = Storage(str(tensor.dtype).removeprefix("torch."), tensor.element_size())
    return plain if stored is None else stored


def bake(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with Condensa parametrizations folded into plain parameters.

    The copy computes the same outputs; tensors that also carry parametrizations
    that are not Condensa's are left parametrized. ``model`` is not modified.
    """
    baked = copy_model(model)
    for module in baked.modules():
        if follows_mask(module):
            freeze(module)  # the norm keeps normalizing over the kept channels
    for _, module, tensor_name, plist in list(_lists(baked)):
        if all(isinstance(p, CONDENSA_TYPES) for p in plist):
            parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
    return baked


def restore(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Rebuild Condensa parametrizations recorded in ``state_dict``, then load it.

    ``model`` must be a fresh instance of the same architecture. Returns ``model``.

    Raises:
        ConfigError: a parametrization key is not one of Condensa's.

    """
    marker = ".parametrizations."
    found: dict[tuple[str, str, int], tuple[type[StoredFormat], torch.Tensor]] = {}
    others: dict[tuple[str, str, int], str] = {}  # further buffers of a parametrization
    for key, value in state_dict.items():
        if marker not in f".{key}":
            continue
        head, _, rest = f".{key}".partition(marker)
        parts = rest.split(".")
        if parts[-1] == "original" or len(parts) != 3:
            continue
        tensor_name, index, buffer = parts
        where = (head.lstrip("."), tensor_name, int(index))
        stored_format = format_keyed(buffer)
        if stored_format is None:
            others[where] = key
            continue
        found[where] = (stored_format, value)
    for where, key in others.items():
        if where not in found:  # loaded by load_state_dict only beside a format's key buffer
            keys = ", ".join(f.key for f in formats())
            raise ConfigError(
                f"state dict key {key!r} is not a Condensa parametrization (buffers: {keys})"
            )
    for (module_name, tensor_name, _), (stored_format, value) in sorted(
        found.items(), key=lambda item: item[0]
    ):
        module = model.get_submodule(module_name)
        register(module, tensor_name, stored_format.from_buffer(value))
    model.load_state_dict(state_dict)
    return model
