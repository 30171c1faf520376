"""Decoder stacks with grouped-query attention and a gated MLP (Llama, Mistral, Qwen2, SmolLM).

The family record of a decoder language model: for every block, its query/key/value/
output projections, its gate/up/down projections and its head counts, read from the
modules' shapes (``head_dim`` from the attention module or the config). Grouped-query
attention: ``kv_heads`` key/value heads, each shared by ``heads // kv_heads`` query
heads (query head ``h`` reads key/value head ``h // group``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from condensa.errors import ConfigError
from condensa.structure import GROUP_COUNTS


@dataclass(frozen=True)
class DecoderLayer:
    """One decoder block's structure (FQNs of its Linears and its counts).

    Attributes:
        block: the block's FQN.
        attention: the attention module's FQN.
        q, k, v, o: the projections' FQNs.
        gate, up, down: the gated MLP's projections' FQNs.
        heads: query heads; ``kv_heads`` key/value heads; ``head_dim`` rows per head.
        width: the MLP's intermediate width.
        attention_norm, mlp_norm: the norms whose outputs feed ``q, k, v`` and
            ``gate, up`` (None when the block has none by those names).

    """

    block: str
    attention: str
    q: str
    k: str
    v: str
    o: str
    gate: str
    up: str
    down: str
    heads: int
    kv_heads: int
    head_dim: int
    width: int
    attention_norm: str | None = None
    mlp_norm: str | None = None

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads

    def query_rows(self, head: int) -> range:
        """Rows of query head ``head`` in ``q`` (and its input columns in ``o``)."""
        return range(head * self.head_dim, (head + 1) * self.head_dim)

    def kv_rows(self, kv_head: int) -> range:
        """Rows of key/value head ``kv_head`` in ``k`` and ``v``."""
        return range(kv_head * self.head_dim, (kv_head + 1) * self.head_dim)


@dataclass(frozen=True)
class DecoderStack:
    """The family record of a decoder model: its name, every block's structure, the last norm.

    ``final_norm`` feeds the output head (None when not found by name).
    """

    family: str
    layers: tuple[DecoderLayer, ...]
    final_norm: str | None = None

    ATTENTION_COUNTS = GROUP_COUNTS
    """Attributes of the attention module that follow the head counts."""


Detect = Callable[[nn.Module], "DecoderStack | None"]


def _linear(module: nn.Module, name: str) -> nn.Linear | None:
    found = getattr(module, name, None)
    return found if isinstance(found, nn.Linear) else None


def _norm(module: nn.Module, name: str, join: str) -> str | None:
    return f"{join}{name}" if isinstance(getattr(module, name, None), nn.Module) else None


def llama(model: nn.Module) -> DecoderStack | None:
    """Blocks with ``self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj`` Linears.

    Covers the Hugging Face Llama family (Llama, Mistral, Qwen2/3, SmolLM...). The head
    width is the attention module's ``head_dim`` (else the config's); the norms are
    ``input_layernorm`` and ``post_attention_layernorm`` in each block and ``norm`` beside
    the block list.
    """
    config = getattr(model, "config", None)
    layers = []
    final_norm = None
    for name, module in model.named_modules():
        if isinstance(getattr(module, "layers", None), nn.ModuleList):
            final_norm = _norm(module, "norm", f"{name}." if name else "") or final_norm
        attention, mlp = getattr(module, "self_attn", None), getattr(module, "mlp", None)
        if not isinstance(attention, nn.Module) or not isinstance(mlp, nn.Module):
            continue
        q, k, v, o = (_linear(attention, f"{p}_proj") for p in "qkvo")
        gate, up, down = (_linear(mlp, f"{p}_proj") for p in ("gate", "up", "down"))
        if None in (q, k, v, o, gate, up, down):
            continue
        assert q is not None and k is not None and gate is not None  # for mypy
        head_dim = getattr(attention, "head_dim", None) or getattr(config, "head_dim", None)
        if not isinstance(head_dim, int) or head_dim < 1:
            continue
        if q.out_features % head_dim or k.out_features % head_dim:
            continue
        heads, kv_heads = q.out_features // head_dim, k.out_features // head_dim
        if kv_heads < 1 or heads % kv_heads:
            continue
        join = f"{name}." if name else ""
        layers.append(
            DecoderLayer(
                block=name,
                attention=f"{join}self_attn",
                q=f"{join}self_attn.q_proj",
                k=f"{join}self_attn.k_proj",
                v=f"{join}self_attn.v_proj",
                o=f"{join}self_attn.o_proj",
                gate=f"{join}mlp.gate_proj",
                up=f"{join}mlp.up_proj",
                down=f"{join}mlp.down_proj",
                heads=heads,
                kv_heads=kv_heads,
                head_dim=head_dim,
                width=gate.out_features,
                attention_norm=_norm(module, "input_layernorm", join),
                mlp_norm=_norm(module, "post_attention_layernorm", join),
            )
        )
    return DecoderStack("llama", tuple(layers), final_norm) if layers else None


_FAMILIES: list[Detect] = [llama]


def register_family(detect: Detect) -> Detect:
    """Teach Condensa a decoder family (tried before the built-ins); returns ``detect``.

    Raises:
        ConfigError: ``detect`` is not callable.

    """
    if not callable(detect):
        raise ConfigError(f"a family detector must be callable, got {detect!r}")
    _FAMILIES.insert(0, detect)
    return detect


def decoder_stack(model: nn.Module) -> DecoderStack | None:
    """The family record of ``model``, or None when no registered family recognizes it."""
    for detect in _FAMILIES:
        found = detect(model)
        if found is not None:
            return found
    return None
