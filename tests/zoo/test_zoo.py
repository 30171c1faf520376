"""The zoo: models map their inputs to their classes, full-size parameter counts match the
literature, bad arguments are refused.
"""

import pytest
import torch

from condensa import ConfigError, zoo

IMAGE_MODELS = {
    "digits_cnn": (1, 8),
    "lenet300100": (1, 28),
    "lenet5": (1, 28),
    "vgg11": (3, 32),
    "vgg16": (3, 32),
    "vgg19": (3, 32),
    "resnet20": (3, 32),
    "resnet32": (3, 32),
    "resnet56": (3, 32),
    "alexnet": (3, 32),
}


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_tiny_versions_map_inputs_to_classes(name):
    """width/in_channels/num_classes give small models of the right output shape."""
    channels, side = IMAGE_MODELS[name]
    model = zoo.get(name, width=0.25, in_channels=2, num_classes=7).eval()
    out = model(torch.randn(3, 2, side, side))
    assert out.shape == (3, 7)


def test_full_size_parameter_counts_match_the_literature():
    counts = {
        n: sum(p.numel() for p in zoo.get(n).parameters())
        for n in ("lenet300100", "resnet20", "resnet56")
    }
    assert counts["lenet300100"] == 266_610
    assert 0.26e6 < counts["resnet20"] < 0.28e6  # ~0.27M
    assert 0.84e6 < counts["resnet56"] < 0.87e6  # ~0.85M


def test_lenet5_on_padded_inputs():
    assert zoo.LeNet5(input_size=32)(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_lstm_language_model_shapes_and_tying():
    model = zoo.get("lstm_lm", vocab_size=50, embedding_dim=16, hidden_dim=16, tie_weights=True)
    logits, (h, c) = model(torch.randint(0, 50, (6, 4)))
    assert logits.shape == (6, 4, 50) and h.shape == (2, 4, 16)
    assert model.decoder.weight is model.encoder.weight


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown zoo model 'vgg13'; valid: digits_cnn"):
        zoo.get("vgg13")
    with pytest.raises(ConfigError, match="ResNet depth must be 6n\\+2"):
        zoo.ResNet(21)
    with pytest.raises(ConfigError, match="width must be a positive number"):
        zoo.get("lenet5", width=0)
    with pytest.raises(ConfigError, match="tie_weights needs embedding_dim == hidden_dim"):
        zoo.LSTMLanguageModel(10, embedding_dim=8, hidden_dim=16, tie_weights=True)
    with pytest.raises(ConfigError, match="invalid arguments for zoo model 'lenet5'"):
        zoo.get("lenet5", depth=3)
