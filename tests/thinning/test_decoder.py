"""Decoder structure from the family record: GQA heads, MLP width, thin, save, load, generate."""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, SelectionError, schemes
from condensa.families import decoder_stack
from condensa.thinning import thin_report

transformers = pytest.importorskip("transformers")

from ..optim.test_oneshot import tiny_llama  # noqa: E402

TOKENS = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(3))


def shapes(model):
    return [
        (
            block.self_attn.q_proj.out_features,
            block.self_attn.k_proj.out_features,
            block.self_attn.num_key_value_groups,
            block.mlp.gate_proj.out_features,
        )
        for block in model.model.layers
    ]


def logits(model, tokens=TOKENS):
    with torch.no_grad():
        return model(tokens).logits


def test_the_family_record_reads_grouped_heads():
    """tiny Llama: 8 query heads of width 8 in 2 key/value groups, MLP width 128, per block."""
    stack = decoder_stack(tiny_llama())
    assert stack.family == "llama" and len(stack.layers) == 2
    layer = stack.layers[0]
    assert (layer.heads, layer.kv_heads, layer.group, layer.head_dim, layer.width) == (
        8,
        2,
        4,
        8,
        128,
    )
    assert layer.q == "model.layers.0.self_attn.q_proj"
    assert decoder_stack(nn.Sequential(nn.Linear(2, 2))) is None


@pytest.mark.parametrize(
    "scheme, expected",
    [
        (schemes.HeadPrune(0.5, allocation="uniform"), [(32, 8, 4, 128)] * 2),
        (schemes.HeadPrune(0.5, gqa="query", allocation="uniform"), [(32, 16, 2, 128)] * 2),
        (schemes.MLPPrune(0.25), [(64, 16, 4, 96)] * 2),
    ],
)
def test_thinned_decoder_matches_the_masked_one(scheme, expected):
    """Masks, then thin: equal logits, and the config-relevant counts are what was asked."""
    model = tiny_llama()
    masked = condensa.compress(model, scheme)
    thinned = condensa.thin(masked, TOKENS)
    assert shapes(thinned) == expected
    assert torch.allclose(logits(thinned), logits(masked), atol=1e-5)
    assert sum(p.numel() for p in thinned.parameters()) < sum(p.numel() for p in model.parameters())


def test_global_group_pruning_may_differ_per_layer_and_still_generates():
    """HeadPrune(0.25) ranks groups across layers; the thinned model generates the same text."""
    model = tiny_llama(layers=3)
    masked = condensa.compress(model, schemes.HeadPrune(0.25))
    thinned = condensa.thin(masked, TOKENS)
    kv = [block.self_attn.k_proj.out_features // 8 for block in thinned.model.layers]
    assert sum(kv) == 6 - 2 and max(kv) <= 2  # 2 of the 6 groups went, no layer emptied
    prompt = TOKENS[:1, :5]
    again = masked.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(thinned.generate(prompt, max_new_tokens=6, do_sample=False), again)


def test_thin_save_load_prune_again_thin_again(tmp_path):
    """The per-layer sizes travel in the file; the reloaded model prunes and thins again."""
    model = tiny_llama()
    scheme = schemes.Compose(
        [schemes.HeadPrune(0.5, gqa="query", allocation="uniform"), schemes.MLPPrune(0.25)]
    )
    thinned = condensa.thin(condensa.compress(model, scheme), TOKENS)
    path = condensa.save(thinned, tmp_path / "thin.condensa")
    loaded = condensa.load(path, model=tiny_llama(seed=9))
    assert shapes(loaded) == shapes(thinned)
    assert torch.equal(logits(loaded), logits(thinned))
    again = condensa.compress(loaded, schemes.HeadPrune(0.5, allocation="uniform"))
    twice = condensa.thin(again, TOKENS)
    assert shapes(twice) == [(16, 8, 2, 96)] * 2
    assert torch.allclose(logits(twice), logits(again), atol=1e-5)


def test_uneven_dead_heads_stay_and_are_reported():
    """Dead query heads in only one group: groups must stay equal, so they are kept, named."""
    model = tiny_llama()
    with torch.no_grad():
        model.model.layers[0].self_attn.o_proj.weight[:, :8] = 0  # head 0 of group 0 only
    result = thin_report(model, TOKENS)
    assert shapes(result.model)[0] == (64, 16, 4, 128)
    assert [k.root for k in result.kept] == ["model.layers.0.self_attn"]


def test_pruning_every_head_of_a_layer_is_refused_at_thinning():
    """All o_proj columns of a block zero: thin names the attention module."""
    model = tiny_llama()
    with torch.no_grad():
        model.model.layers[1].self_attn.o_proj.weight.zero_()
    with pytest.raises(ConfigError, match="every head of 'model.layers.1.self_attn'"):
        condensa.thin(model, TOKENS)


def test_unstructured_masks_on_a_decoder_have_nothing_to_thin():
    """Prune(0.5) leaves every head and channel alive: the error names the structural schemes."""
    masked = condensa.compress(tiny_llama(), schemes.Prune(0.5))
    with pytest.raises(ConfigError, match="HeadPrune or schemes.MLPPrune"):
        condensa.thin(masked, TOKENS)


def test_bad_decoder_scheme_options_and_models():
    """Unknown gqa mode, query mode with a global ranking, MLPPrune of a non-decoder, no blocks."""
    with pytest.raises(ConfigError, match="gqa must be one of"):
        schemes.HeadPrune(0.5, gqa="kv")
    with pytest.raises(ConfigError, match="allocation='uniform'"):
        condensa.compress(tiny_llama(), schemes.HeadPrune(0.5, gqa="query"))
    with pytest.raises(SelectionError, match="register_family"):
        condensa.compress(nn.Sequential(nn.Linear(4, 4)), schemes.MLPPrune(0.5))
    with pytest.raises(SelectionError, match="selected none of the 2 decoder blocks"):
        condensa.compress(tiny_llama(), schemes.MLPPrune(0.5, include=[r"nothing"]))


def test_decoder_schemes_round_trip_through_specs():
    """MLPPrune and HeadPrune(gqa=...) are plain-data specs like every scheme."""
    for scheme in (
        schemes.MLPPrune(0.3, allocation="global"),
        schemes.HeadPrune(0.5, gqa="query", allocation="uniform"),
    ):
        assert schemes.from_dict(scheme.to_dict()).to_dict() == scheme.to_dict()
