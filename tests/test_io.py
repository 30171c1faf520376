"""save/load: bit-exact round trips, files near the ideal size, atomic writes, and files that are
truncated, newer or pickles refused without running code.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import condensa
from condensa import CondensaError, ConfigError, masking, schemes, zoo
from condensa.functional.encoding import (
    bitmask_decode,
    bitmask_encode,
    entropy_bits,
    rice_decode,
    rice_encode,
    rice_parameter,
)
from tests.conftest import TinyCNN


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.98, 0.999])
def test_position_codes_round_trip(sparsity):
    rng = np.random.default_rng(0)
    mask = rng.random(10_000) >= sparsity
    k = rice_parameter(mask.size, int(mask.sum()))
    unary, rest = rice_encode(mask, k)
    assert np.array_equal(rice_decode(unary, rest, k, mask.size, int(mask.sum())), mask)
    assert np.array_equal(bitmask_decode(bitmask_encode(mask), mask.size), mask)


@pytest.mark.parametrize("sparsity", [0.9, 0.98])
def test_rice_code_is_near_the_entropy_bound(sparsity):
    rng = np.random.default_rng(1)
    mask = rng.random(200_000) >= sparsity
    k = rice_parameter(mask.size, int(mask.sum()))
    unary, rest = rice_encode(mask, k)
    assert (unary.nbytes + rest.nbytes) * 8 <= 1.05 * entropy_bits(mask.size, int(mask.sum()))


@pytest.mark.parametrize(
    "scheme",
    [
        schemes.Prune(0.9),
        schemes.Compose([schemes.Prune(0.98), schemes.Quantize("float16")]),
        schemes.Compose([schemes.Prune(0.5), schemes.Quantize("bfloat16")]),
        schemes.Compose([schemes.FilterPrune(0.5), schemes.Quantize("int8")]),
        schemes.NMPrune(2, 4, exclude="conv1"),
    ],
    ids=repr,
)
def test_save_load_round_trip_is_bit_exact(tmp_path, images, scheme):
    torch.manual_seed(0)
    model = condensa.compress(TinyCNN(), scheme).eval()
    path = condensa.save(model, tmp_path / "m.condensa")
    loaded = condensa.load(path, TinyCNN()).eval()
    assert torch.equal(loaded(images), model(images))
    assert set(masking.masks(loaded)) == set(masking.masks(model))
    for fqn, mask in masking.masks(model).items():
        assert torch.equal(masking.masks(loaded)[fqn], mask)


def test_plain_integer_and_bool_buffers_round_trip(tmp_path):
    """Tensors that no stored format holds keep their own dtype (an int8 buffer is not
    mistaken for int8 quantization), beside a quantized weight."""

    class WithBuffers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)
            self.register_buffer("codes", torch.tensor([-5, 0, 7], dtype=torch.int8))
            self.register_buffer("flags", torch.tensor([True, False, True]))

        def forward(self, x):
            return self.fc(x) * self.codes * self.flags

    torch.manual_seed(0)
    model = condensa.compress(WithBuffers(), schemes.Quantize("int8"))
    loaded = condensa.load(condensa.save(model, tmp_path / "m.condensa"), WithBuffers())
    assert loaded.codes.dtype == torch.int8 and torch.equal(loaded.codes, model.codes)
    assert torch.equal(loaded.flags, model.flags)
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-6)


def test_file_is_smaller_than_dense_and_close_to_ideal(tmp_path):
    torch.manual_seed(0)
    model = condensa.compress(
        zoo.LeNet300100(), schemes.Compose([schemes.Prune(0.98), schemes.Quantize("float16")])
    )
    path = condensa.save(model, tmp_path / "m.condensa")
    stats = condensa.stats(model)
    assert path.stat().st_size < stats.dense_bytes / 40
    assert path.stat().st_size < 1.6 * stats.compressed_bytes  # index + metadata overhead


def test_load_from_recorded_zoo_name(tmp_path):
    model = condensa.compress(zoo.LeNet5(width=0.5), schemes.Prune(0.5)).eval()
    path = condensa.save(model, tmp_path / "m.condensa", zoo="lenet5", kwargs={"width": 0.5})
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(condensa.load(path).eval()(x), model(x))


def test_load_needs_an_architecture(tmp_path):
    path = condensa.save(nn.Linear(2, 2), tmp_path / "m.condensa")
    with pytest.raises(ConfigError, match="records no architecture"):
        condensa.load(path)


def test_load_into_wrong_model_names_differences(tmp_path):
    path = condensa.save(TinyCNN(), tmp_path / "m.condensa")
    with pytest.raises(ConfigError, match="does not match Sequential"):
        condensa.load(path, nn.Sequential(nn.Linear(2, 2)))


def test_truncated_file_is_refused(tmp_path):
    path = condensa.save(TinyCNN(), tmp_path / "m.condensa")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CondensaError, match="not a readable Condensa file"):
        condensa.load(path, TinyCNN())


def test_newer_version_is_refused(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "future.condensa"
    save_file(
        {"x": np.zeros(1, np.float32)}, str(path), metadata={"format": "condensa", "version": "99"}
    )
    with pytest.raises(ConfigError, match="format version 99"):
        condensa.load(path, TinyCNN())


def test_malicious_pickle_is_refused_without_running(tmp_path):
    """A pickle whose __reduce__ would run a command is never unpickled."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model.condensa"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(CondensaError, match="never loaded"):
        condensa.load(path, TinyCNN())
    torch_file = tmp_path / "torch.pt"
    torch.save({"evil": Evil()}, torch_file)
    with pytest.raises(CondensaError):
        condensa.load(torch_file, TinyCNN())
    assert not marker.exists()


def test_save_is_atomic(tmp_path):
    """An existing file is replaced only once the new one is complete."""
    path = condensa.save(TinyCNN(), tmp_path / "m.condensa")
    before = path.read_bytes()
    with pytest.raises(ConfigError):
        condensa.save(TinyCNN(), path, zoo="a", factory="b:c")
    assert path.read_bytes() == before


class _Tied(torch.nn.Module):
    """An embedding and an output layer sharing one weight (as tied language models do)."""

    def __init__(self, tie=True):
        super().__init__()
        self.embed = torch.nn.Embedding(40, 8)
        self.head = torch.nn.Linear(8, 40, bias=False)
        if tie:
            self.head.weight = self.embed.weight

    def forward(self, x):
        return self.head(self.embed(x))


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    """A weight shared by two modules is stored once; the loaded model shares it too."""
    torch.manual_seed(0)
    model = _Tied()
    path = condensa.save(model, tmp_path / "tied.condensa")
    untied_bytes = 2 * 40 * 8 * 4
    assert path.stat().st_size < untied_bytes
    loaded = condensa.load(path, model=_Tied())
    assert loaded.head.weight is loaded.embed.weight
    assert torch.equal(loaded.embed.weight, model.embed.weight)


def test_a_tied_file_into_an_untied_architecture_is_refused(tmp_path):
    """The file says the head shares the embedding; a model that does not share is refused."""
    path = condensa.save(_Tied(), tmp_path / "tied.condensa")
    with pytest.raises(condensa.ConfigError, match="does not tie them"):
        condensa.load(path, model=_Tied(tie=False))


def test_a_tied_record_naming_no_stored_tensor_is_malformed(tmp_path):
    """A 'tied' entry whose source is not in the file is refused before anything is built."""
    from safetensors.numpy import save_file

    from condensa.io import read

    metadata, arrays = read(condensa.save(_Tied(), tmp_path / "tied.condensa"))
    metadata["tied"] = json.dumps({"head.weight": "nowhere.weight"})
    save_file(arrays, str(tmp_path / "bad.condensa"), metadata=metadata)
    with pytest.raises(condensa.CondensaError, match="malformed: tied tensor"):
        condensa.load(tmp_path / "bad.condensa", model=_Tied())
