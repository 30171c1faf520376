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
from condensa.structure import HEAD_COUNTS, HEAD_WIDTHS


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

    def value_rows(self, head: int) -> list[int]:
        """Rows of ``head``'s values in the value projection."""
        fqn, segment = self.value
        segments = max(n for name, n in self.projections if name == fqn)
        rows = self.rows(head, segments)
        return rows[segment * self.head_dim : (segment + 1) * self.head_dim]


Describe = Callable[[str, nn.Module], "HeadLayout | None"]


def _join(name: str, attr: str) -> str:
    return f"{name}.{attr}" if name else attr


PROJECTIONS = (
    ("query", "key", "value"),
    ("q_proj", "k_proj", "v_proj"),
    ("q_lin", "k_lin", "v_lin"),
)
"""Names of separate q/k/v Linears: BERT-style, the ``*_proj`` of recent Hugging Face models
(ViT, CLIP, LLaMA-style attention), DistilBERT's ``*_lin``."""


def separate_qkv(name: str, module: nn.Module) -> HeadLayout | None:
    """Separate query/key/value Linears of equal width and a head count attribute.

    Recognizes Hugging Face BERT (``query``/``key``/``value``, ``num_attention_heads``,
    ``all_head_size``), ViT and other ``q_proj``/``k_proj``/``v_proj`` attention, and
    DistilBERT (``q_lin``..., ``n_heads``). Grouped-query attention (fewer key/value heads)
    is not a layout this describes.
    """
    for names in PROJECTIONS:
        parts = [getattr(module, a, None) for a in names]
        if all(isinstance(p, nn.Linear) for p in parts):
            break
    else:
        return None
    counts = [(a, "heads") for a in HEAD_COUNTS if type(getattr(module, a, None)) is int]
    if not counts:
        return None
    heads = getattr(module, counts[0][0])
    widths = {p.out_features for p in parts if isinstance(p, nn.Linear)}
    if heads < 1 or len(widths) != 1 or next(iter(widths)) % heads:
        return None
    counts += [(a, "width") for a in HEAD_WIDTHS if type(getattr(module, a, None)) is int]
    return HeadLayout(
        module=name,
        heads=heads,
        head_dim=next(iter(widths)) // heads,
        projections=tuple((_join(name, a), 1) for a in names),
        value=(_join(name, names[2]), 0),
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
