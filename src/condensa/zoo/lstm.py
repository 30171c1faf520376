"""A word-level LSTM language model (Zaremba et al. 2014 style)."""

from __future__ import annotations

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.zoo.common import scaled


class LSTMLanguageModel(nn.Module):
    """Embedding -> 2-layer LSTM -> linear decoder, with optional tied weights.

    Args:
        vocab_size: number of tokens.
        embedding_dim: embedding size (scaled by ``width``).
        hidden_dim: LSTM hidden size (scaled by ``width``); must equal the embedding
            size when ``tie_weights``.
        num_layers: LSTM layers.
        dropout: dropout on embeddings, between layers and before the decoder.
        tie_weights: share the embedding and decoder weights.
        width: multiplier of the embedding and hidden sizes.

    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embedding_dim: int = 200,
        hidden_dim: int = 200,
        num_layers: int = 2,
        dropout: float = 0.2,
        tie_weights: bool = False,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ConfigError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
        emb, hid = scaled(embedding_dim, width), scaled(hidden_dim, width)
        if tie_weights and emb != hid:
            raise ConfigError(f"tie_weights needs embedding_dim == hidden_dim, got {emb} and {hid}")
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, emb)
        self.rnn = nn.LSTM(emb, hid, num_layers, dropout=dropout if num_layers > 1 else 0.0)
        self.decoder = nn.Linear(hid, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.num_layers, self.hidden_dim = num_layers, hid
        with torch.no_grad():
            self.encoder.weight.uniform_(-0.1, 0.1)
            self.decoder.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()

    def forward(
        self, tokens: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """`(T, B)` token ids -> `(T, B, vocab)` logits and the final hidden state."""
        output, hidden = self.rnn(self.drop(self.encoder(tokens)), hidden)
        return self.decoder(self.drop(output)), hidden
