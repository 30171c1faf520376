"""Parametrizations: masks are bool buffers that survive .to, deepcopy, state dicts, training and
tied weights; baking keeps the outputs.
"""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import condensa
from condensa import masking, schemes
from tests.conftest import TinyCNN


@pytest.fixture
def pruned(cnn):
    return condensa.compress(cnn, schemes.Prune(0.8))


def _pruned_entries(model):
    return {fqn: ~mask for fqn, mask in masking.masks(model).items()}


def test_masks_are_registered_bool_buffers(pruned):
    found = masking.masks(pruned)
    assert set(found) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    assert all(m.dtype == torch.bool for m in found.values())
    buffers = dict(pruned.named_buffers())
    assert "conv1.parametrizations.weight.0.mask" in buffers


def test_masks_follow_to(pruned, images):
    """.to(dtype) converts weights, keeps masks bool, and pruned entries stay zero."""
    doubled = pruned.to(torch.float64)
    assert doubled.fc1.weight.dtype == torch.float64
    assert doubled.fc1.parametrizations.weight[0].mask.dtype == torch.bool
    for fqn, pruned_entries in _pruned_entries(doubled).items():
        assert (
            doubled.get_parameter(fqn.replace("weight", "parametrizations.weight.original")).dtype
            == torch.float64
        )
        assert (doubled.get_submodule(fqn.rsplit(".", 1)[0]).weight[pruned_entries] == 0).all()
    meta = copy.deepcopy(pruned).to("meta")
    assert meta.fc1.parametrizations.weight[0].mask.device.type == "meta"


def test_state_dict_round_trip_into_fresh_model(pruned, images):
    """restore() rebuilds the masks from a state dict: same outputs, same masks."""
    pruned.eval()
    fresh = masking.restore(TinyCNN(), pruned.state_dict()).eval()
    assert torch.equal(fresh(images), pruned(images))
    assert all(torch.equal(masking.masks(fresh)[k], v) for k, v in masking.masks(pruned).items())


def test_state_dict_round_trip_keeps_casts_and_int8(cnn, images):
    for dtype in ("float16", "bfloat16", "int8"):
        small = condensa.compress(
            cnn, schemes.Compose([schemes.Prune(0.5), schemes.Quantize(dtype)])
        ).eval()
        fresh = masking.restore(TinyCNN(), small.state_dict()).eval()
        assert torch.equal(fresh(images), small(images))
        assert masking.storage(fresh.fc1, "weight").dtype == dtype


def test_deepcopy_keeps_masks(pruned, images):
    twin = copy.deepcopy(pruned)
    assert torch.equal(twin.eval()(images), pruned.eval()(images))
    assert (
        twin.fc1.parametrizations.weight[0].mask is not pruned.fc1.parametrizations.weight[0].mask
    )


def test_parameter_identity_kept_for_existing_optimizer(cnn, images):
    """An optimizer created before the masks were attached keeps training the same tensors."""
    model = cnn
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weight = model.fc1.weight
    plan = schemes.Prune(0.5).plan(model)
    masking.apply_plan(model, plan)
    assert model.fc1.parametrizations.weight.original is weight
    before = weight.detach().clone()
    model(images).sum().backward()
    optimizer.step()
    assert not torch.equal(weight.detach(), before)
    assert (model.fc1.weight[~masking.masks(model)["fc1.weight"]] == 0).all()


def test_gradients_are_zero_at_pruned_entries(pruned, images):
    pruned(images).square().sum().backward()
    for fqn, pruned_entries in _pruned_entries(pruned).items():
        module = pruned.get_submodule(fqn.rsplit(".", 1)[0])
        grad = module.parametrizations.weight.original.grad
        assert grad is not None and (grad[pruned_entries] == 0).all()
        assert (grad[~pruned_entries] != 0).any()


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    ],
    ids=["sgd-momentum-wd", "adam"],
)
def test_pruned_entries_stay_zero_after_training(pruned, make_optimizer):
    """After 50 steps, every pruned entry is still exactly zero in the forward weights."""
    torch.manual_seed(0)
    optimizer = make_optimizer(pruned.parameters())
    for _ in range(50):
        x = torch.randn(8, 1, 8, 8)
        loss = nn.functional.cross_entropy(pruned(x), torch.randint(0, 10, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for fqn, pruned_entries in _pruned_entries(pruned).items():
        weight = pruned.get_submodule(fqn.rsplit(".", 1)[0]).weight
        assert (weight[pruned_entries] == 0).all()
        assert int(pruned_entries.sum()) > 0


def test_bake_gives_plain_model_with_same_outputs(cnn, images):
    small = condensa.compress(
        cnn, schemes.Compose([schemes.FilterPrune(0.5), schemes.Quantize("int8")])
    ).eval()
    baked = masking.bake(small).eval()
    assert not any(parametrize.is_parametrized(m) for m in baked.modules())
    assert torch.equal(baked(images), small(images))
    assert isinstance(baked.fc1.weight, nn.Parameter)
    assert any(parametrize.is_parametrized(m) for m in small.modules())  # original untouched


def test_compressed_values_equal_plan_projection(cnn):
    """DC: each target's forward weight is Δ(π(w)) of the plan's operator."""
    scheme = schemes.Compose([schemes.Prune(0.7), schemes.Quantize("int8")])
    plan = scheme.plan(cnn)
    expected = plan.project()
    small = condensa.compress(cnn, scheme)
    for fqn, value in expected.items():
        assert torch.equal(small.get_submodule(fqn.rsplit(".", 1)[0]).weight, value)


def test_restore_refuses_foreign_parametrizations():
    sd = {"parametrizations.weight.0.scale": torch.ones(1)}
    with pytest.raises(condensa.ConfigError, match="not a Condensa parametrization"):
        masking.restore(nn.Linear(2, 2), sd)


def _tied_lm():
    from condensa import zoo

    torch.manual_seed(0)
    return zoo.LSTMLanguageModel(40, embedding_dim=8, hidden_dim=8, tie_weights=True)


@pytest.mark.parametrize("exclude", [None, r"^encoder$"])
def test_tied_weights_stay_tied_and_pruned_through_training(exclude):
    """Compressing one holder of a tied tensor masks every holder; SGD regrows nothing."""
    model = condensa.compress(
        _tied_lm(), schemes.Prune(0.7, types=["Embedding", "Linear"], exclude=exclude)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    tokens = torch.randint(0, 40, (6, 3), generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        optimizer.zero_grad()
        logits, _ = model(tokens)
        logits.square().mean().backward()
        optimizer.step()
    assert torch.equal(model.encoder.weight, model.decoder.weight)
    assert float((model.decoder.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.01)


def test_tied_weights_survive_save_and_load(tmp_path):
    """The loaded model shares one stored tensor between the tied modules, same outputs."""
    model = condensa.compress(_tied_lm(), schemes.Prune(0.6)).eval()
    path = condensa.save(
        model,
        tmp_path / "lm.condensa",
        zoo="lstm_lm",
        kwargs={"vocab_size": 40, "embedding_dim": 8, "hidden_dim": 8, "tie_weights": True},
    )
    loaded = condensa.load(path).eval()
    stored = loaded.encoder.parametrizations.weight.original
    assert stored is loaded.decoder.parametrizations.weight.original
    tokens = torch.randint(0, 40, (5, 2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(model(tokens)[0], loaded(tokens)[0])
