"""Saving a thinned model records its structure; loading rebuilds it without a skeleton."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import condensa
from condensa import CondensaError, schemes, zoo
from tests import architectures as A


def _thinned_resnet():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    model = zoo.ResNet(20, width=0.5).eval()
    thinned = condensa.thin(condensa.compress(model, schemes.FilterPrune(0.5), x), x).eval()
    return model, thinned, x


@pytest.mark.slow
def test_thinned_zoo_model_loads_from_its_name_alone(tmp_path):
    dense, thinned, x = _thinned_resnet()
    path = condensa.save(thinned, tmp_path / "t.condensa", zoo="resnet20", kwargs={"width": 0.5})
    loaded = condensa.load(path).eval()
    assert torch.equal(loaded(x), thinned(x))
    assert sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for p in thinned.parameters()
    )
    assert loaded.conv1.out_channels == thinned.conv1.out_channels < dense.conv1.out_channels


@pytest.mark.slow
def test_thinned_bert_loads_into_a_fresh_model_with_its_head_counts(tmp_path):
    pytest.importorskip("transformers")
    model, x = A.build("bert")
    scheme = schemes.Compose([schemes.StructurePrune(0.3), schemes.HeadPrune(0.5)])
    thinned = condensa.thin(condensa.compress(model, scheme, x), x).eval()
    path = condensa.save(thinned, tmp_path / "b.condensa")
    fresh, _ = A.build("bert")
    loaded = condensa.load(path, model=fresh).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**x).last_hidden_state, thinned(**x).last_hidden_state)
    attention = loaded.encoder.layer[0].attention.self
    assert attention.num_attention_heads == 2 and attention.all_head_size == 16
    assert fresh.encoder.layer[0].attention.self.num_attention_heads == 4  # not modified


def _rewrite(path, **changes):
    with safe_open(str(path), "np") as handle:
        metadata = dict(handle.metadata())
    arrays = load_file(str(path))
    metadata.update(changes)
    save_file(arrays, str(path), metadata=metadata)


@pytest.mark.slow
@pytest.mark.parametrize(
    "record, message",
    [
        ("not json", "'structure' is not JSON"),
        (json.dumps({"fc": {"out_features": "ten"}}), "bad structure record for module 'fc'"),
        (json.dumps({"fc": {"evil": 1}}), "bad structure record"),
    ],
)
def test_malformed_structure_records_are_refused(tmp_path, record, message):
    _, thinned, _ = _thinned_resnet()
    path = condensa.save(thinned, tmp_path / "t.condensa", zoo="resnet20", kwargs={"width": 0.5})
    _rewrite(path, structure=record)
    with pytest.raises(CondensaError, match=message):
        condensa.load(path)


def test_a_thinned_file_into_another_architecture_is_a_condensa_error(tmp_path):
    _, thinned, _ = _thinned_resnet()
    path = condensa.save(thinned, tmp_path / "t.condensa", zoo="resnet20", kwargs={"width": 0.5})
    with pytest.raises(CondensaError):
        condensa.load(path, model=zoo.VGG(11, width=0.125))


def test_structure_of_modules_the_model_lacks_is_reported_by_the_name_check(tmp_path):
    _, thinned, _ = _thinned_resnet()
    path = condensa.save(thinned, tmp_path / "t.condensa", zoo="resnet20", kwargs={"width": 0.5})
    with pytest.raises(CondensaError, match="does not match"):
        condensa.load(path, model=torch.nn.Sequential(torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("name", ["vit", "convnext", "mobilenet_v2"])
def test_layernorm_streams_and_depthwise_models_reload_masked_and_thinned(tmp_path, name):
    """Masked LayerNorm streams reload as masked norms; thinned ones (class token, layer
    scale, depthwise groups included) reload from the plain architecture; outputs equal."""
    model, x = A.build(name)
    masked = condensa.compress(model, schemes.StructurePrune(0.3), x).eval()
    thinned = condensa.thin(masked, x).eval()
    factory = {"vit": A.ViT, "convnext": A.ConvNeXt, "mobilenet_v2": lambda: A.MobileNet(2)}
    with torch.no_grad():
        expected = masked(x)
        for tag, saved in (("masked", masked), ("thinned", thinned)):
            path = condensa.save(saved, tmp_path / f"{tag}.condensa")
            loaded = condensa.load(path, factory=factory[name]).eval()
            assert torch.allclose(loaded(x), expected, atol=1e-5, rtol=1e-4), tag
    assert sum(p.numel() for p in thinned.parameters()) < 0.9 * sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.parametrize("name", ["bert", "distilbert"])
def test_head_prune_thin_save_load_twice_keeps_outputs_and_head_counts(tmp_path, name):
    """HeadPrune, thin, save, load, then the same again: each loaded model equals its source."""
    pytest.importorskip("transformers")
    from condensa.schemes.attention import ATTENTION

    model, x = A.build(name)
    for round_ in range(2):
        thinned = condensa.thin(condensa.compress(model, schemes.HeadPrune(0.5), x), x).eval()
        path = condensa.save(thinned, tmp_path / f"{name}{round_}.condensa")
        fresh, _ = A.build(name)
        loaded = condensa.load(path, model=fresh).eval()
        with torch.no_grad():
            assert torch.equal(loaded(**x).last_hidden_state, thinned(**x).last_hidden_state)
        heads = [layout.heads for layout in ATTENTION.layouts(loaded)]
        assert heads == [layout.heads for layout in ATTENTION.layouts(thinned)]
        assert sum(heads) == 8 // 2 ** (round_ + 1)  # 2 layers x 4 heads, halved each round
        model = loaded
