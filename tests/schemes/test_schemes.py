"""Schemes select the right tensors and units, plan without modifying the model, round-trip through
dicts and TOML, and name what matched nothing.
"""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, SelectionError, UnsupportedModuleError, schemes
from condensa.operators import Cast, Chain, Magnitude


def test_nm_prune_two_of_four(cnn):
    """NMPrune(2, 4) leaves exactly 2 non-zeros in every group of 4 (input dimension)."""
    small = condensa.compress(cnn, schemes.NMPrune(2, 4, exclude=r"^conv1$"))
    for layer in (small.conv2, small.fc1, small.fc2):
        w = layer.weight
        groups = (w != 0).movedim(1, -1).reshape(-1, 4)
        assert (groups.sum(1) == 2).all()
    assert torch.equal(small.conv1.weight, cnn.conv1.weight)


def test_neuron_prune_skips_output_layer_by_default(mlp):
    small = condensa.compress(mlp, schemes.NeuronPrune(0.5))
    assert (small[4].weight != 0).all()
    assert int((small[0].weight.abs().sum(1) == 0).sum()) > 0


def test_neuron_prune_can_prune_output_layer_when_asked(mlp):
    small = condensa.compress(
        mlp, schemes.NeuronPrune(0.5, include=r"^4$", skip_output_layer=False)
    )
    assert int((small[4].weight.abs().sum(1) == 0).sum()) == 2


def test_structure_prune_ranks_filters_and_neurons_together(cnn):
    small = condensa.compress(cnn, schemes.StructurePrune(0.5))
    dead_filters = int((small.conv2.weight.flatten(1).abs().sum(1) == 0).sum())
    dead_neurons = int((small.fc1.weight.abs().sum(1) == 0).sum())
    assert dead_filters > 0 and dead_neurons > 0
    assert (small.fc2.weight != 0).any(dim=1).all()


def test_block_prune_zeroes_whole_blocks(mlp):
    small = condensa.compress(mlp, schemes.BlockPrune(0.5, block=(4, 4), include=r"^[02]$"))
    for layer in (small[0], small[2]):
        blocks = layer.weight.reshape(layer.weight.shape[0] // 4, 4, -1, 4).permute(0, 2, 1, 3)
        nonzero = (blocks != 0).reshape(blocks.shape[0], blocks.shape[1], -1).sum(-1)
        assert ((nonzero == 0) | (nonzero == 16)).all()


def test_compose_ranks_before_quantizing(mlp):
    """Compose([Prune, Quantize]): fp16 of the pruned weights (π left to right)."""
    small = condensa.compress(
        mlp, schemes.Compose([schemes.Prune(0.5), schemes.Quantize("float16")])
    )
    pruned = condensa.compress(mlp, schemes.Prune(0.5))
    for i in (0, 2, 4):
        assert torch.equal(small[i].weight, pruned[i].weight.half().float())


def test_plan_chains_operators_per_target(mlp):
    plan = schemes.Compose([schemes.Prune(0.5), schemes.Quantize("float16")]).plan(mlp)
    assert plan.fqns == ["0.weight", "2.weight", "4.weight"]
    op = plan["0.weight"].operator
    assert isinstance(op, Chain) and isinstance(op.operators[0], Magnitude)
    assert op.operators[1] == Cast("float16")


def test_planning_does_not_modify_model(cnn):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    schemes.Compose([schemes.FilterPrune(0.5), schemes.Quantize("int8")]).plan(cnn)
    assert all(torch.equal(v, before[k]) for k, v in cnn.state_dict().items())


def test_selection_include_exclude(cnn):
    plan = schemes.Prune(0.5, include=["conv", "fc"], exclude=r"^fc2$").plan(cnn)
    assert plan.fqns == ["conv1.weight", "conv2.weight", "fc1.weight"]
    plan = schemes.Prune(0.5, types=[nn.Linear]).plan(cnn)
    assert plan.fqns == ["fc1.weight", "fc2.weight"]


def test_pattern_matching_nothing_is_named(cnn):
    with pytest.raises(SelectionError, match=r"pattern\(s\) \['decoder'\] matched no"):
        schemes.Prune(0.5, include=["conv", "decoder"]).plan(cnn)


def test_selection_matching_no_module(cnn):
    with pytest.raises(SelectionError, match="matched no module"):
        schemes.Prune(0.5, include="conv", exclude="conv").plan(cnn)


def test_unsupported_type_is_named():
    with pytest.raises(
        UnsupportedModuleError, match=r"unsupported module type\(s\) \['BatchNorm2d'\]"
    ):
        schemes.Prune(0.5, types=[nn.BatchNorm2d])
    with pytest.raises(TypeError):
        schemes.FilterPrune(0.5, types=["Linear"])


def test_invalid_regex_is_config_error():
    with pytest.raises(ConfigError, match=r"invalid regex '\(conv'"):
        schemes.Prune(0.5, include="(conv")


@pytest.mark.parametrize(
    "scheme",
    [
        schemes.Prune(0.9),
        schemes.Prune(0.5, allocation="uniform", exclude=[r"^fc2$"], types=[nn.Linear, "Conv2d"]),
        schemes.BlockPrune(0.5, block=(2, 2), criteria="max", include=["fc"]),
        schemes.FilterPrune(0.3, align=2),
        schemes.NeuronPrune(0.5, skip_output_layer=False),
        schemes.StructurePrune(0.4, allocation={"fc1": 0.2}),
        schemes.NMPrune(1, 4, exclude=r"^conv1$"),
        schemes.Quantize("int8"),
        schemes.Compose([schemes.Prune(0.9), schemes.Quantize("float16")]),
        schemes.Rules({"sparsity": 0.5, "*": [{"type": "magnitude"}], "^fc2$": []}),
    ],
    ids=repr,
)
def test_spec_round_trip_dict_and_toml(scheme, cnn):
    """to_dict/from_dict and TOML give back an equal scheme that plans identically."""
    again = schemes.from_dict(scheme.to_dict())
    assert again == scheme
    from_toml = schemes.from_toml(schemes.to_toml(scheme))
    assert from_toml == scheme
    a, b = scheme.plan(cnn), from_toml.plan(cnn)
    assert a.fqns == b.fqns
    assert all(a[f].operator == b[f].operator for f in a.fqns)


def test_rules_spec_regex_keys_and_default(cnn):
    spec = {
        "sparsity": 0.5,
        "*": [{"type": "block", "block": [2, 2]}],
        "^fc2$": [{"type": "magnitude", "sparsity": 0.9}, {"type": "float16"}],
        "conv1": [],
    }
    small = condensa.compress(cnn, schemes.from_dict(spec))
    assert torch.equal(small.conv1.weight, cnn.conv1.weight)
    assert int((small.fc2.weight == 0).sum()) == 320 - 32
    assert torch.equal(small.fc2.weight, small.fc2.weight.half().float())
    zeros = int((small.conv2.weight == 0).sum()) + int((small.fc1.weight == 0).sum())
    assert zeros == (small.conv2.weight.numel() + small.fc1.weight.numel()) // 2


def test_rules_key_matching_nothing(cnn):
    with pytest.raises(ConfigError, match=r"rule key\(s\) \['decoder'\] match no"):
        condensa.compress(
            cnn, schemes.from_dict({"sparsity": 0.5, "decoder": [{"type": "magnitude"}]})
        )


def test_unknown_scheme_type_lists_valid():
    with pytest.raises(
        ConfigError, match="unknown scheme type 'Pruner'; valid types: Prune, BlockPrune"
    ):
        schemes.from_dict({"type": "Pruner", "sparsity": 0.5})


def test_malformed_toml_names_line():
    with pytest.raises(ConfigError, match="line 2"):
        schemes.from_toml('type = "Prune"\nsparsity = = 0.5\n')


def test_custom_scheme_without_to_dict_explains():
    class Mine(schemes.Scheme):
        def plan(self, model, weights=None):
            return schemes.Plan()

    with pytest.raises(ConfigError, match="Mine cannot be turned into a spec"):
        Mine().to_dict()


def test_lstm_weights_are_targets():
    """Every weight_* matrix of an LSTM is a target; the result still runs and saves."""
    from condensa import zoo

    model = zoo.LSTMLanguageModel(30, embedding_dim=8, hidden_dim=8)
    types = ["Embedding", "LSTM", "Linear"]
    plan = schemes.Prune(0.5, types=types).plan(model)
    assert plan.fqns == [
        "encoder.weight",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.weight_ih_l1",
        "rnn.weight_hh_l1",
        "decoder.weight",
    ]
    small = condensa.compress(
        model,
        schemes.Compose([schemes.Prune(0.5, types=types), schemes.Quantize("int8", types=types)]),
    )
    weights = [
        getattr(small.rnn, n)
        for n in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1")
    ]
    weights += [small.encoder.weight, small.decoder.weight]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros >= sum(w.numel() for w in weights) // 2  # int8 may round a few more to zero
    logits, _ = small(torch.randint(0, 30, (4, 2)))
    assert logits.shape == (4, 2, 30)


def test_tied_weights_are_one_target_with_the_other_holder_as_alias():
    """Embedding and decoder sharing one Parameter are ranked and compressed once."""
    from condensa import zoo

    model = zoo.LSTMLanguageModel(30, embedding_dim=8, hidden_dim=8, tie_weights=True)
    plan = schemes.Prune(0.5, types=["Embedding", "Linear"]).plan(model)
    assert plan.fqns == ["encoder.weight"]
    (entry,) = list(plan)
    assert [alias for alias, _ in entry.target.aliases] == [model.decoder]
    plan = schemes.Prune(0.5, types=["Embedding", "Linear"], exclude="decoder").plan(model)
    assert plan.fqns == ["encoder.weight"]
