"""stats: parameter, byte and MAC counts of dense, pruned and quantized models are exact; the model
is not modified; bad input sizes are refused.
"""

import pytest
import torch
from torch import nn

import condensa
from condensa import schemes
from condensa.functional import n_keep
from tests.conftest import make_mlp


def test_dense_model_counts(mlp):
    st = condensa.stats(mlp)
    assert st.numel == sum(p.numel() for p in mlp.parameters())
    assert st.dense_bytes == 4 * st.numel
    assert st.compression_ratio == pytest.approx(st.numel / st.nonzeros)
    assert [r.name for r in st.layers] == ["0", "2", "4"]
    assert st.macs is None


def test_pruned_and_quantized_bytes(mlp):
    """fp16 stores 2 bytes per non-zero; int8 1 byte plus one float32 scale per row."""
    small = condensa.compress(
        mlp, schemes.Compose([schemes.Prune(0.5), schemes.Quantize("float16")])
    )
    row = condensa.stats(small).layers[0]
    assert row.dtype == "float16"
    weight_nonzeros = int((small[0].weight != 0).sum())
    bias_nonzeros = int((small[0].bias != 0).sum())
    assert row.compressed_bytes == weight_nonzeros * 2 + bias_nonzeros * 4  # bias stays fp32
    assert row.dense_bytes == (32 * 16 + 32) * 4

    quantized = condensa.compress(mlp, schemes.Quantize("int8", include="^0$"))
    row = condensa.stats(quantized).layers[0]
    weight_nonzeros = int((quantized[0].weight != 0).sum())
    assert row.dtype == "int8"
    assert row.compressed_bytes == weight_nonzeros * 1 + 32 * 4 + 32 * 4  # values + scales + bias


def test_sparsity_and_ratio_of_prune(mlp):
    small = condensa.compress(mlp, schemes.Prune(0.9))
    st = condensa.stats(small)
    weights = sum(layer.weight.numel() for layer in (mlp[0], mlp[2], mlp[4]))
    biases = sum(layer.bias.numel() for layer in (mlp[0], mlp[2], mlp[4]))
    zeros = weights - n_keep(weights, 0.9)
    assert st.nonzeros == weights + biases - zeros
    assert st.sparsity == pytest.approx(zeros / (weights + biases))
    assert st.compression_ratio == pytest.approx((weights + biases) / st.nonzeros)


def test_macs_dense_and_effective():
    """Linear: in*out per sample; conv: out_numel * in*k*k; dead filters and inputs skipped."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    )
    st = condensa.stats(model, input_size=(1, 2, 5, 5))
    conv_macs = 4 * 5 * 5 * (2 * 9)
    assert [r.macs for r in st.layers] == [conv_macs, 100 * 3]
    assert st.macs == st.effective_macs == conv_macs + 300
    small = condensa.compress(model, schemes.FilterPrune(0.5))
    st = condensa.stats(small, input_size=(1, 2, 5, 5))
    assert st.layers[0].effective_macs == conv_macs // 2
    assert st.macs == conv_macs + 300


def test_stats_does_not_modify_model_in_train_mode(cnn):
    cnn.train()
    before = cnn.bn1.running_mean.clone()
    condensa.stats(cnn, input_size=(2, 1, 8, 8))
    assert torch.equal(cnn.bn1.running_mean, before) and cnn.training


def test_table_lists_layers_and_totals(cnn):
    text = condensa.stats(
        condensa.compress(cnn, schemes.Prune(0.5)), input_size=(1, 1, 8, 8)
    ).table()
    for word in ("conv1", "fc2", "sparsity", "ratio", "total", "MACs"):
        assert word in text


def test_to_dict_is_plain(cnn):
    d = condensa.stats(cnn).to_dict()
    assert d["numel"] == sum(p.numel() for p in cnn.parameters())
    assert d["layers"][0]["name"] == "conv1"


def test_input_size_validation(cnn):
    with pytest.raises(condensa.ConfigError, match="input_size must hold positive integers"):
        condensa.stats(cnn, input_size=(1, 0, 8, 8))
    with pytest.raises(condensa.ConfigError, match="not both"):
        condensa.stats(cnn, torch.zeros(1, 1, 8, 8), input_size=(1, 1, 8, 8))


def test_layers_without_bias():
    """A conv with bias=False has a None bias parameter: it is skipped, not an error."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(2 * 36, 3))
    st = condensa.stats(model, input_size=(1, 1, 8, 8))
    assert st.layers[0].numel == 2 * 9


def test_real_file_bytes_beside_ideal_bytes():
    small = condensa.compress(make_mlp(), schemes.Prune(0.9))
    st = condensa.stats(small, file_bytes=True)
    assert st.file_bytes is not None and st.file_bytes > st.compressed_bytes
    assert st.file_bytes < st.dense_bytes
    assert "saved file" in st.table()
    assert condensa.stats(small).file_bytes is None


def test_inputs_the_model_refuses_are_a_config_error_naming_them(mlp):
    """stats with a wrong input shape or wrong keyword inputs: ConfigError, not a raw error."""
    with pytest.raises(condensa.ConfigError, match=r"does not accept the example inputs \(3, 5\)"):
        condensa.stats(mlp, torch.randn(3, 5))
    with pytest.raises(condensa.ConfigError, match="input_ids"):
        condensa.stats(mlp, {"input_ids": torch.zeros(1, 4, dtype=torch.long)})
