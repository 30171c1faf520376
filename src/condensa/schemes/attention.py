"""Where the attention heads of a model are: one layout per attention module.

A :class:`HeadLayout` names the projections whose output rows are split into heads
(separate ``query``/``key``/``value`` Linears as in BERT, or one fused ``qkv`` as in
ViT) and the attributes that count heads, so :class:`~condensa.schemes.HeadPrune` can
mask whole heads and :func:`condensa.thin` can remove them. Two layouts are built in;
:func:`register_attention` teaches another (a function ``(name, module) -> HeadLayout |
None``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from condensa.errors import ConfigError


@dataclass(frozen=True)
class HeadLayout:
    """The head structure of one attention module.

    Attributes:
        module: FQN of the attention module.
        heads: number of heads.
        head_dim: rows per head in each segment.
        projections: ``(Linear FQN, segments)``: the Linear's output rows are
            ``segments`` stacked blocks (3 for a fused qkv), each ``heads x head_dim``.
        value: ``(Linear FQN, segment)`` holding the values: a head whose value rows are
            zero contributes nothing and can be removed.
        counts: attributes of the attention module to update when heads go: each name
            maps to ``"heads"`` (the count) or ``"width"`` (heads x head_dim).

    """

    module: str
    heads: int
    head_dim: int
    projections: tuple[tuple[str, int], ...]
    value: tuple[str, int]
    counts: tuple[tuple[str, str], ...]

    def rows(self, head: int, segments: int) -> list[int]:
        """Output rows of ``head`` in a projection of ``segments`` blocks."""
        width = self.heads * self.head_dim
        return [
            s * width + head * self.head_dim + i
            for s in range(segments)
            for i in range(self.head_dim)
        ]


Describe = Callable[[str, nn.Module], "HeadLayout | None"]


def _join(name: str, attr: str) -> str:
    return f"{name}.{attr}" if name else attr


def separate_qkv(name: str, module: nn.Module) -> HeadLayout | None:
    """``query``/``key``/``value`` Linears and ``num_attention_heads`` (Hugging Face BERT)."""
    parts = [getattr(module, a, None) for a in ("query", "key", "value")]
    heads = getattr(module, "num_attention_heads", None)
    if not all(isinstance(p, nn.Linear) for p in parts) or not isinstance(heads, int):
        return None
    value = parts[2]
    assert isinstance(value, nn.Linear)
    counts = [("num_attention_heads", "heads")]
    if isinstance(getattr(module, "all_head_size", None), int):
        counts.append(("all_head_size", "width"))
    return HeadLayout(
        module=name,
        heads=heads,
        head_dim=value.out_features // heads,
        projections=tuple((_join(name, a), 1) for a in ("query", "key", "value")),
        value=(_join(name, "value"), 0),
        counts=tuple(counts),
    )


def fused_qkv(name: str, module: nn.Module) -> HeadLayout | None:
    """One ``qkv`` Linear (q, k, v stacked) and ``num_heads`` (ViT, timm)."""
    qkv = getattr(module, "qkv", None)
    heads = getattr(module, "num_heads", None)
    if not isinstance(qkv, nn.Linear) or not isinstance(heads, int) or heads < 1:
        return None
    if qkv.out_features % (3 * heads):
        return None
    return HeadLayout(
        module=name,
        heads=heads,
        head_dim=qkv.out_features // (3 * heads),
        projections=((_join(name, "qkv"), 3),),
        value=(_join(name, "qkv"), 2),
        counts=(("num_heads", "heads"),),
    )


def attention_layouts(model: nn.Module, describers: list[Describe]) -> list[HeadLayout]:
    """Every attention module of ``model`` some describer recognizes."""
    out = []
    for name, module in model.named_modules():
        for describe in describers:
            layout = describe(name, module)
            if layout is not None:
                out.append(layout)
                break
    return out


class AttentionRegistry:
    """The describers :class:`HeadPrune` and thinning try, in order (built-ins last)."""

    def __init__(self) -> None:
        self._describers: list[Describe] = [separate_qkv, fused_qkv]

    def register(self, describe: Describe) -> Describe:
        """Try ``describe`` before the built-ins; returns it (usable as a decorator)."""
        if not callable(describe):
            raise ConfigError(f"an attention describer must be callable, got {describe!r}")
        self._describers.insert(0, describe)
        return describe

    def layouts(self, model: nn.Module) -> list[HeadLayout]:
        """Every attention module of ``model``."""
        return attention_layouts(model, list(self._describers))


ATTENTION = AttentionRegistry()
"""The registry of attention layouts (the public hook: ``register_attention``)."""


def register_attention(describe: Describe) -> Describe:
    """Teach HeadPrune and thinning a custom attention module.

    Example:
        >>> @register_attention  # doctest: +SKIP
        ... def mine(name, module):
        ...     if isinstance(module, MyAttention):
        ...         return HeadLayout(name, module.h, module.d, ((f"{name}.in_proj", 3),),
        ...                           (f"{name}.in_proj", 2), (("h", "heads"),))

    """
    return ATTENTION.register(describe)
