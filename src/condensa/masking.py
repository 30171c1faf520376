"""Compression held inside a model as ``torch.nn.utils.parametrize`` parametrizations.

A compressed tensor keeps its original ``nn.Parameter`` (so optimizers created
earlier keep working) under ``module.parametrizations.<name>.original``; the forward
pass sees it through Condensa parametrizations:

- :class:`Mask` — a registered ``bool`` buffer (True = keep); zero gradient at
  pruned entries, so pruned weights stay exactly zero in the forward pass whatever
  the optimizer does;
- :class:`FakeCast` — round to float16/bfloat16 and back (straight-through gradient);
- :class:`FakeQuantInt8` — symmetric per-channel int8 fake quantization (straight-through).

Every parametrization's configuration lives in registered buffers, so a
``state_dict`` describes it completely and :func:`restore` rebuilds it in a fresh
model. Nothing is stored on user modules besides what ``parametrize`` itself adds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa.errors import ConfigError
from condensa.functional import DTYPES, fake_cast, fake_quantize_int8
from condensa.operators import (
    AffineTensor,
    CastTensor,
    ChainedTensor,
    Compressed,
    PrunedTensor,
)
from condensa.schemes import Plan

CAST_CODES: dict[int, str] = {16: "float16", 17: "bfloat16"}
"""Code stored in :class:`FakeCast`'s ``code`` buffer -> storage dtype name."""


class Mask(nn.Module):
    """``w * mask``; ``mask`` is a registered bool buffer, True = keep.

    Args:
        mask: `bool` tensor of the parametrized tensor's shape.

    """

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """Zero the pruned entries (gradient is zero there too)."""
        return weight * self.mask


class FakeCast(nn.Module):
    """Round to a narrower float dtype and back, with a straight-through gradient.

    Args:
        dtype: ``"float16"`` or ``"bfloat16"``.

    """

    code: torch.Tensor

    def __init__(self, dtype: str) -> None:
        super().__init__()
        codes = {v: k for k, v in CAST_CODES.items()}
        if dtype not in codes:
            raise ConfigError(f"FakeCast dtype must be one of {list(codes)}, got {dtype!r}")
        self.register_buffer("code", torch.tensor(codes[dtype], dtype=torch.int64))

    @property
    def dtype(self) -> str:
        """The storage dtype name."""
        return CAST_CODES[int(self.code)]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The representable value nearest to ``weight``."""
        return fake_cast(weight, DTYPES[self.dtype])


class FakeQuantInt8(nn.Module):
    """Symmetric int8 fake quantization with one scale per channel of ``axis``."""

    axis: torch.Tensor

    def __init__(self, axis: int = 0) -> None:
        super().__init__()
        self.register_buffer("axis", torch.tensor(axis, dtype=torch.int64))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """``dequantize(quantize(weight))`` with an identity gradient."""
        return fake_quantize_int8(weight, int(self.axis))


PARAMETRIZATIONS: dict[str, type[nn.Module]] = {
    "mask": Mask,
    "code": FakeCast,
    "axis": FakeQuantInt8,
}
"""Condensa parametrization classes by the buffer that identifies them in a state dict."""

CONDENSA_TYPES = (Mask, FakeCast, FakeQuantInt8)


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


def _parametrizations(
    compressed: Compressed, has_bias: bool, name: str = "weight"
) -> list[tuple[str, nn.Module]]:
    """``(tensor name, parametrization)`` pairs that hold ``compressed`` for tensor ``name``."""
    if isinstance(compressed, PrunedTensor):
        pairs: list[tuple[str, nn.Module]] = [(name, Mask(compressed.mask))]
        if compressed.bias_mask is not None and has_bias and name == "weight":
            pairs.append(("bias", Mask(compressed.bias_mask)))
        return pairs
    if isinstance(compressed, CastTensor):
        names = {v: k for k, v in DTYPES.items()}
        return [(name, FakeCast(names[compressed.values.dtype]))]
    if isinstance(compressed, AffineTensor):
        return [(name, FakeQuantInt8(compressed.axis))]
    if isinstance(compressed, ChainedTensor):
        return [p for part in compressed.parts for p in _parametrizations(part, has_bias, name)]
    raise TypeError(f"no parametrization holds {type(compressed).__name__}")


def apply_plan(model: nn.Module, plan: Plan) -> None:
    """Compress ``model`` in place as ``plan`` says (direct compression).

    Every operator is checked and π computed for every target *before* the model is
    touched. Tensors not yet parametrized get their stored value set to ``Δ(π(w))``;
    then the parametrizations are registered. If registration fails part-way, what
    was added is rolled back.

    Raises:
        CondensaError: from the operators' checks; the model is then unchanged.

    """
    compressed = plan.compress()
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
                parametrize.register_parametrization(module, tensor_name, param)
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
        found = [p.mask for p in plist if isinstance(p, Mask)]
        if found:
            combined = found[0].clone()
            for m in found[1:]:
                combined &= m
            out[_fqn(module_name, tensor_name)] = combined
    return out


@dataclass(frozen=True)
class Storage:
    """How a tensor's values would be stored compressed.

    Attributes:
        dtype: storage dtype name of the values (``"float32"``, ``"float16"``, ``"int8"``...).
        value_bytes: bytes per stored value.
        scale_count: number of float32 scales stored beside the values (int8).

    """

    dtype: str
    value_bytes: int
    scale_count: int = 0


def storage(module: nn.Module, tensor_name: str) -> Storage:
    """The storage of ``module.<tensor_name>`` implied by its parametrizations."""
    tensor = getattr(module, tensor_name)
    result = Storage(str(tensor.dtype).removeprefix("torch."), tensor.element_size())
    if parametrize.is_parametrized(module, tensor_name):
        for p in module.parametrizations[tensor_name]:  # type: ignore[index]
            if isinstance(p, FakeCast):
                result = Storage(p.dtype, DTYPES[p.dtype].itemsize)
            elif isinstance(p, FakeQuantInt8):
                axis = int(p.axis)
                result = Storage("int8", 1, tensor.shape[axis] if tensor.dim() > axis else 1)
    return result


def bake(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with Condensa parametrizations folded into plain parameters.

    The copy computes the same outputs; tensors that also carry parametrizations
    that are not Condensa's are left parametrized. ``model`` is not modified.
    """
    baked = copy_model(model)
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
    found: dict[tuple[str, str, int], tuple[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if marker not in f".{key}":
            continue
        head, _, rest = f".{key}".partition(marker)
        parts = rest.split(".")
        if parts[-1] == "original" or len(parts) != 3:
            continue
        tensor_name, index, buffer = parts
        if buffer not in PARAMETRIZATIONS:
            raise ConfigError(f"state dict key {key!r} is not a Condensa parametrization")
        found[(head.lstrip("."), tensor_name, int(index))] = (buffer, value)
    for (module_name, tensor_name, _), (buffer, value) in sorted(found.items()):
        module = model.get_submodule(module_name)
        if buffer == "mask":
            param: nn.Module = Mask(value)
        elif buffer == "code":
            param = FakeCast(CAST_CODES[int(value)])
        else:
            param = FakeQuantInt8(int(value))
        parametrize.register_parametrization(module, tensor_name, param)
    model.load_state_dict(state_dict)
    return model
