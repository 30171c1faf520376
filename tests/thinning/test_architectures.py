"""Group-aware channel pruning and thinning on the architectures users bring."""

import pytest
import torch

import condensa
from condensa import masking, schemes
from condensa.thinning import dependency_groups, thin_report
from tests import architectures as A

CNNS_AND_TRANSFORMERS = [n for n in A.ALL if n != "lstm"]


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _outputs(model, x):
    from condensa.thinning.groups import output_tensors, run_forward

    with torch.no_grad():
        return output_tensors(run_forward(model.eval(), x))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "ghostnet" else n
        for n in CNNS_AND_TRANSFORMERS
    ],
)
def test_structure_prune_thins_with_equal_outputs(name):
    """Invariant: thinned outputs equal the masked model's; the model really shrinks."""
    if name in A.HUGGING_FACE:
        pytest.importorskip("transformers")
    model, x = A.build(name)
    masked = condensa.compress(model, schemes.StructurePrune(0.3), x)
    report = thin_report(masked, x)
    for a, b in zip(_outputs(report.model, x), _outputs(masked, x), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert report.removed, report.kept
    assert _params(report.model) < 0.95 * _params(model)
    assert not masking.masks(report.model)


@pytest.mark.parametrize("name", ["resnet_basic", "mobilenet_v2", "densenet"])
def test_every_masked_channel_is_removed_on_convnets(name):
    """With groups bound, nothing pruned is left behind on these CNNs."""
    model, x = A.build(name)
    masked = condensa.compress(model, schemes.FilterPrune(0.5), x)
    report = thin_report(masked, x)
    assert report.kept == []
    assert _params(report.model) < 0.5 * _params(model)


def test_residual_groups_couple_both_branches():
    model, x = A.build("resnet_basic")
    groups = {g.root: g for g in dependency_groups(model, x)}
    stem = next(g for g in groups.values() if any(m.module == "stem.0" for m in g.members))
    outs = {m.module for m in stem.members if m.role == "out"}
    # the stem and the last conv of both residual blocks of stage 1 write the same channels
    assert {"stem.0", "blocks.0.body.1.0", "blocks.1.body.1.0"} <= outs
    assert not stem.blocked


def test_attention_and_output_groups_are_blocked_but_layernorm_streams_are_not():
    """A ViT's residual stream (LayerNorms, class token, position embedding) can be pruned."""
    model, x = A.build("vit")
    groups = {g.root: g for g in dependency_groups(model, x)}
    blocked = {root: g.blocked for root, g in groups.items()}
    assert "model's output" in blocked["head"]
    assert "attention" in blocked["blocks.0.attn.qkv"]
    assert blocked["blocks.0.mlp.0"] == ""  # the MLP's hidden neurons can go
    stream = next(g for g in groups.values() if any(m.module == "norm" for m in g.members))
    assert stream.blocked == ""
    params = {m.module: m.dim for m in stream.members if m.role == "param"}
    assert params == {"cls_token": 2, "pos_embed": 2}
    # printed, a group is one short line however many channel pairs it holds
    text = repr(groups["head"])
    assert text.startswith("ChannelGroup('head',") and "blocked: " in text and len(text) < 200
    assert "pairs" in repr(stream.members[0]) and "(0, 0)" not in repr(stream.members[0])


def test_group_norm_still_blocks_its_channels():
    """Only LayerNorms follow masks: a GroupNorm's statistics mix the channels of a group."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.GroupNorm(2, 8), torch.nn.Conv2d(8, 4, 3)
    )
    groups = {g.root: g.blocked for g in dependency_groups(model, torch.randn(2, 3, 8, 8))}
    assert "GroupNorm '1' normalizes over these channels" in groups["0"]


@pytest.mark.slow
def test_entangled_group_is_kept_with_a_reason_and_the_rest_thinned():
    """GhostNet's cheap operation couples concat halves Torch-Pruning maps one to one."""
    model, x = A.build("ghostnet")
    masked = condensa.compress(model, schemes.StructurePrune(0.3), x)
    report = thin_report(masked, x)
    for a, b in zip(_outputs(report.model, x), _outputs(masked, x), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert report.removed
    assert all(k.reason for k in report.kept)


def test_lstm_language_model_keeps_its_recurrent_state_and_thins_nothing_wrongly():
    model, x = A.build("lstm")
    blocked = [g.blocked for g in dependency_groups(model, x)]
    assert blocked and all(blocked)  # hidden state and logits are outputs; embeddings are read


def test_embedding_dimensions_need_dependency_groups():
    model, x = A.build("lstm")
    with pytest.raises(condensa.ConfigError, match="Embedding dimensions.*example_inputs"):
        condensa.compress(model, schemes.StructurePrune(0.5, types=["Embedding"]))


def test_no_prunable_group_is_a_selection_error_with_the_reasons():
    model, x = A.build("lstm")
    with pytest.raises(condensa.SelectionError, match="no dependency group.*blocked because"):
        condensa.compress(model, schemes.StructurePrune(0.5, types=["Embedding"]), x)


def test_embedding_writers_are_masked_along_their_dimension():
    """A token model whose embedding feeds a Linear: embedding columns go with the inputs."""

    class Bag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(20, 12)
            self.fc = torch.nn.Linear(12, 5)

        def forward(self, ids):
            return self.fc(self.embed(ids).mean(1))

    torch.manual_seed(0)
    ids = torch.randint(0, 20, (3, 7))
    masked = condensa.compress(Bag(), schemes.StructurePrune(0.5, types=["Embedding"]), ids)
    assert masked.embed.parametrizations.weight[0].mask.shape == (20, 12)
    report = thin_report(masked, ids)
    assert report.model.embed.embedding_dim == report.model.fc.in_features < 12
    assert torch.allclose(report.model(ids), masked(ids), atol=1e-6)


def test_group_plan_targets_the_same_writers_at_every_sparsity():
    """L-C re-plans at every C step: the set of masked tensors must not depend on s."""
    from condensa.schemes.groups import bind_groups

    model, x = A.build("resnet_basic")
    groups = dependency_groups(model, x)
    plans = [bind_groups(schemes.FilterPrune(s), groups).plan(model) for s in (0.0, 0.3, 0.7)]
    assert plans[0].fqns == plans[1].fqns == plans[2].fqns
    assert all(all(e.operator.keep) for e in plans[0])  # nothing removed at 0
    assert "blocks.0.body.0.1.weight" in plans[0].fqns  # BatchNorm scale and shift too


def test_align_rounds_each_group_to_a_multiple():
    model, x = A.build("resnet_basic")
    masked = condensa.compress(model, schemes.FilterPrune(0.4, align=4), x)
    report = thin_report(masked, x)
    for name, module in report.model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and name != "stem.0":
            assert module.out_channels % 4 == 0, (name, module.out_channels)


def test_composed_quantization_rides_along_and_still_thins():
    model, x = A.build("mobilenet_v2")
    scheme = schemes.Compose([schemes.FilterPrune(0.3), schemes.Quantize("float16")])
    masked = condensa.compress(model, scheme, x)
    report = thin_report(masked, x)
    assert report.removed and not report.kept
    for a, b in zip(_outputs(report.model, x), _outputs(masked, x), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_unselected_writer_keeps_its_group_whole():
    """exclude= one writer of a residual group: the group is not pruned at all."""
    model, x = A.build("resnet_basic")
    masked = condensa.compress(model, schemes.FilterPrune(0.5, exclude=[r"^stem"]), x)
    report = thin_report(masked, x)
    assert report.model.stem[0].out_channels == model.stem[0].out_channels
    assert report.model.blocks[0].body[1][0].out_channels == model.stem[0].out_channels
    assert report.removed  # the blocks' inner convolutions still go


def test_tracing_groups_leaves_the_users_model_as_it_was():
    """compress(model, scheme, x) traces the original: modes and BatchNorm statistics stay."""
    model, x = A.build("resnet_basic")
    model.train()
    model.blocks[0].eval()  # mixed modes are restored exactly
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    condensa.compress(model, schemes.FilterPrune(0.3), x)
    assert model.training and not model.blocks[0].training and model.blocks[1].training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.slow
def test_frozen_models_and_no_grad_callers_are_traced_too():
    model, x = A.build("resnet_basic")
    model.requires_grad_(False)
    with torch.no_grad():
        masked = condensa.compress(model, schemes.FilterPrune(0.3), x)
        report = thin_report(masked, x)
    assert report.removed
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.slow
def test_ghostnet_concat_halves_are_coupled_and_removed_together():
    """Channel j and j + half of a Ghost module's output come from one primary channel."""
    model, x = A.build("ghostnet")
    coupled = {g.root: g for g in dependency_groups(model, x) if g.couplings}
    assert "blocks.1.short.0.0" in coupled
    group = coupled["blocks.1.short.0.0"]
    assert (8, 0) in group.couplings  # primary channel 0 feeds concat channels 0 and 8
    masked = condensa.compress(model, schemes.StructurePrune(0.5), x)
    report = thin_report(masked, x)
    assert "blocks.1.short.0.0" in report.removed
    ghost2 = report.model.blocks[0].ghost2
    assert ghost2.primary[0].out_channels == ghost2.cheap[0].out_channels < 8


@pytest.mark.parametrize("name", ["regnet", "resnet_basic"])
def test_uniform_ratio_removes_at_least_r_of_every_group_and_balances_blocks(name):
    """A sparsity is a floor: per group (allocation="uniform") at least r of the channels go
    (Torch-Pruning's rule), and a grouped convolution keeps equal-width blocks."""
    model, x = A.build(name)
    ratio = 0.3
    masked = condensa.compress(model, schemes.StructurePrune(ratio, allocation="uniform"), x)
    report = thin_report(masked, x)
    assert report.kept == []
    before = dict(model.named_modules())
    for fqn, module in report.model.named_modules():
        if not isinstance(module, torch.nn.Conv2d) or fqn == "stem.0":
            continue
        dense = before[fqn]
        # at least r removed, and no more than one unit of the rounding beyond it
        assert module.out_channels <= (1 - ratio) * dense.out_channels + 1e-9, fqn
        if dense.groups > 1 and dense.groups != dense.in_channels:
            per_block = dense.out_channels // dense.groups
            assert module.groups == dense.groups  # blocks kept, each one narrower
            assert module.out_channels == dense.groups * int((1 - ratio) * per_block), fqn


def test_a_scheme_says_how_much_its_blocked_groups_hold_and_why():
    """StructurePrune on a whole BERT reaches only the FFN: the warning says so, with reasons."""
    model, x = A.build("bert")
    said = r"channel groups cannot be pruned, holding \d+% .*attention"
    with pytest.warns(UserWarning, match=said):
        condensa.compress(model, schemes.StructurePrune(0.3), x)
