"""thin: the thinned model computes what the masked one does, what cannot be removed is kept and
listed with the reason, and bad inputs are named.
"""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, UnsupportedModuleError, masking, schemes, zoo
from condensa.thinning import thin_report
from tests.architectures import trained_look


def _check_same(model, scheme, x, **kwargs):
    masked = condensa.compress(model, scheme, x).eval()
    thinned = condensa.thin(masked, x, **kwargs).eval()
    with torch.no_grad():
        assert torch.allclose(thinned(x), masked(x), atol=1e-5, rtol=1e-4)
    return masked, thinned


def _params(model):
    return sum(p.numel() for p in model.parameters())


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.bn = nn.BatchNorm2d(14)
        self.head = nn.Conv2d(14, 5, 1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        x = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))
        return self.fc(nn.functional.adaptive_avg_pool2d(self.head(x), 1).flatten(1))


class Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.reduce = nn.Conv2d(16, 8, 1)
        self.bn1 = nn.BatchNorm2d(8)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.expand = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        out = torch.relu(self.bn1(self.reduce(x)))
        out = torch.relu(self.bn2(self.mid(out)))
        x = torch.relu(self.expand(out) + x)
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class LinearIntoLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 10)
        self.rnn = nn.LSTM(10, 7)
        self.out = nn.Linear(7, 3)

    def forward(self, x):
        h, _ = self.rnn(torch.relu(self.proj(x)))
        return self.out(h)


def test_mlp_thinned_equals_masked_and_counts_kept_weights():
    """NeuronPrune: parameter count = kept rows x kept columns (+ kept biases)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4)
    )
    masked, thinned = _check_same(
        model, schemes.NeuronPrune(0.5, allocation="uniform"), torch.randn(5, 12)
    )
    k1, k2 = 10, 8  # round(0.5 * 20), round(0.5 * 16)
    assert thinned[0].weight.shape == (k1, 12) and thinned[2].weight.shape == (k2, k1)
    assert thinned[4].weight.shape == (4, k2)
    assert _params(thinned) == (k1 * 12 + k1) + (k2 * k1 + k2) + (4 * k2 + 4)


def test_rows_masked_without_their_bias_are_kept_and_listed():
    """Rows masked, bias kept: relu(bias) reaches the next layer, so nothing is removed."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias.fill_(0.3)
    rows = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.bool).unsqueeze(1).expand(8, 6)
    torch.nn.utils.parametrize.register_parametrization(model[0], "weight", masking.Mask(rows))
    x = torch.randn(4, 6)
    with pytest.warns(UserWarning, match="'0': 4 .a bias or BatchNorm shift"):
        thinned = condensa.thin(model, x)
    assert thinned[0].weight.shape == (8, 6)
    assert torch.allclose(thinned(x), model(x), atol=1e-6)
    report = thin_report(model, x)
    assert [(k.root, k.channels) for k in report.kept] == [("0", (1, 3, 5, 7))]


@pytest.mark.parametrize(
    "name, make, x",
    [
        ("cnn-bn", lambda: zoo.DigitsCNN(width=0.5), torch.randn(3, 1, 8, 8)),
        ("vgg", lambda: zoo.VGG(11, width=0.125), torch.randn(2, 3, 32, 32)),
        ("resnet-basic", lambda: zoo.ResNet(20, width=0.5), torch.randn(2, 3, 32, 32)),
        ("lenet5-flatten", lambda: zoo.LeNet5(), torch.randn(2, 1, 28, 28)),
        ("bottleneck", Bottleneck, torch.randn(2, 3, 8, 8)),
        ("concat", Concat, torch.randn(2, 3, 8, 8)),
    ],
)
def test_thinned_forward_matches_masked_forward(name, make, x):
    torch.manual_seed(0)
    model = trained_look(make())
    masked, thinned = _check_same(model, schemes.StructurePrune(0.5), x)
    assert _params(thinned) < _params(model)
    assert not masking.masks(thinned)


def test_lstm_input_pruning():
    torch.manual_seed(0)
    model = LinearIntoLSTM()
    x = torch.randn(5, 2, 6)
    masked = condensa.compress(model, schemes.NeuronPrune(0.5, include="proj"), x).eval()
    thinned = condensa.thin(masked, x).eval()
    assert thinned.rnn.input_size == 5 and thinned.proj.out_features == 5
    assert torch.allclose(thinned(x), masked(x), atol=1e-6)


def test_residual_policy_keep_leaves_coupled_channels():
    torch.manual_seed(0)
    model = zoo.ResNet(20, width=0.5)
    x = torch.randn(2, 3, 32, 32)
    strict = _check_same(model, schemes.FilterPrune(0.6), x)[1]
    keep = _check_same(model, schemes.FilterPrune(0.6), x, residual="keep")[1]
    assert _params(keep) >= _params(strict)
    assert keep.conv1.out_channels == model.conv1.out_channels  # on the residual path


def test_input_model_untouched_and_mode_kept():
    torch.manual_seed(0)
    model = zoo.DigitsCNN(width=0.5)
    masked = condensa.compress(model, schemes.FilterPrune(0.5)).train()
    before = {k: v.clone() for k, v in masked.state_dict().items()}
    thinned = condensa.thin(masked, torch.randn(2, 1, 8, 8))
    assert thinned.training
    assert all(torch.equal(v, before[k]) for k, v in masked.state_dict().items())


def test_no_masks_returns_equal_copy_with_warning():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(3, 4)
    with pytest.warns(UserWarning, match="no masks"):
        copy = condensa.thin(model, x)
    assert copy is not model and torch.equal(copy(x), model(x))


def test_unstructured_masks_are_explained():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ConfigError, match="unstructured.*FilterPrune, NeuronPrune"):
        condensa.thin(condensa.compress(model, schemes.Prune(0.5)), torch.randn(3, 4))


def test_layer_with_every_filter_pruned_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    x = torch.randn(1, 1, 8, 8)
    masked = condensa.compress(model, schemes.FilterPrune(0.5), x)
    with torch.no_grad():
        masked[0].parametrizations.weight[0].mask.zero_()
        masked[0].parametrizations.bias[0].mask.zero_()
    with pytest.raises(ConfigError, match="every channel of '0'"):
        condensa.thin(masked, torch.randn(1, 1, 8, 8))


def test_hard_coded_slice_keeps_the_group_and_says_why():
    """``[:, :3]`` is fixed in the code: removing channel 0 would shift the slice."""

    class Sliced(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.fc(x)[:, :3])

    torch.manual_seed(0)
    x = torch.randn(2, 4)
    masked = condensa.compress(Sliced(), schemes.NeuronPrune(0.5, include="fc"), x)
    report = thin_report(masked, x)
    assert [k.root for k in report.kept] == ["fc"]
    assert "does not reproduce the masked model" in report.kept[0].reason
    assert torch.allclose(report.model(x), masked(x), atol=1e-6)
    with pytest.warns(UserWarning, match="kept by thinning: 'fc': 3"):
        condensa.thin(masked, x)


def test_model_failing_on_its_inputs_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    masked = condensa.compress(model, schemes.NeuronPrune(0.5), torch.randn(2, 4))
    with pytest.raises(UnsupportedModuleError, match="cannot trace the model.*mat1 and mat2") as e:
        condensa.thin(masked, torch.randn(2, 5))
    message = str(e.value)
    assert "in module '0' (Linear)" in message  # the failing module's path and type
    assert "exclude=" in message and "register_pruner" in message  # the two remedies


def test_model_without_tensor_output_is_a_clear_error():
    class Talks(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return "hello"

    with pytest.raises(UnsupportedModuleError, match="cannot trace the model"):
        condensa.thin(Talks(), torch.randn(2, 4))


def test_bad_residual_policy():
    with pytest.raises(ConfigError, match="residual must be one of"):
        condensa.thin(nn.Linear(2, 2), torch.randn(1, 2), residual="any")


def test_registered_pruner_teaches_thinning_a_custom_layer():
    torch_pruning = pytest.importorskip("torch_pruning")
    from condensa.thinning import PRUNERS, register_pruner

    class Gain(nn.Module):  # a per-channel buffer: Torch-Pruning cannot know to slice it
        def __init__(self, n):
            super().__init__()
            self.register_buffer("gain", torch.rand(n) + 0.5)

        def forward(self, x):
            return x * self.gain

    class GainPruner(torch_pruning.pruner.BasePruningFunc):
        def prune_out_channels(self, layer, idxs):
            keep = [i for i in range(layer.gain.numel()) if i not in set(idxs)]
            layer.gain = layer.gain[keep]
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer):
            return layer.gain.numel()

        get_in_channels = get_out_channels

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), Gain(8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    masked = condensa.compress(model, schemes.NeuronPrune(0.5), x)
    untaught = thin_report(masked, x)  # the odd layer fails alone: kept, with the reason
    assert untaught.removed == {} and [k.root for k in untaught.kept] == ["0"]
    assert "does not reproduce" in untaught.kept[0].reason
    register_pruner(Gain, GainPruner())
    try:
        report = thin_report(masked, x)
        assert report.removed == {"0": 4} and report.model[1].gain.numel() == 4
        assert torch.allclose(report.model(x), masked(x), atol=1e-6)
    finally:
        PRUNERS.unregister(Gain)
    with pytest.raises(ConfigError, match="not a Torch-Pruning pruner"):
        register_pruner(Gain, object())


def test_a_model_that_needs_its_whole_batch_still_thins():
    """Tracing and checks run on two rows; a model refusing that gets the full inputs."""

    class FixedBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            if x.shape[0] != 5:
                raise ValueError("batches of 5 only")
            return self.fc2(torch.relu(self.fc1(x)))

    torch.manual_seed(0)
    x = torch.randn(5, 4)
    masked = condensa.compress(FixedBatch(), schemes.NeuronPrune(0.5), x)
    thinned = condensa.thin(masked, x)
    assert thinned.fc1.out_features == 4
    assert torch.allclose(thinned(x), masked(x), atol=1e-6)


def test_small_batch_cuts_every_batched_tensor():
    from condensa.inputs import small_batch

    batch = {"ids": torch.zeros(8, 3, dtype=torch.long), "scale": torch.tensor(2.0), "n": 3}
    cut = small_batch(batch)
    assert cut["ids"].shape == (2, 3) and cut["scale"].dim() == 0 and cut["n"] == 3
    assert small_batch((torch.zeros(1, 4),))[0].shape == (1, 4)


@pytest.mark.parametrize("bad", ["hello", 3, None, ()])
def test_example_inputs_of_the_wrong_kind_are_named(bad):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="example_inputs must be a tensor, a non-empty tuple"):
        condensa.thin(model, bad)
    if bad is not None:  # None means "no example inputs" to compress
        with pytest.raises(ConfigError, match="example_inputs must be"):
            condensa.compress(model, schemes.NeuronPrune(0.5), bad)
