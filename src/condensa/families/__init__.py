"""Model families: one record per family of the structure compress, thin, save and load rely on.

A family record names, for a model it recognizes, where its attention and MLP
projections are and how they are counted (query heads, grouped key/value heads, head
width, gated MLP width): the one place attribute names of that family are written.
``register_family`` adds a family (a function ``model -> record | None``).
"""

from condensa.families.decoder import (
    DecoderLayer,
    DecoderStack,
    decoder_stack,
    register_family,
)

__all__ = ["DecoderLayer", "DecoderStack", "decoder_stack", "register_family"]
