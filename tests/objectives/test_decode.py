"""Decode and prefill objectives on a tiny Llama: units, side-by-side ratios, int8 form, errors."""

import pytest
import torch

from condensa import ConfigError
from condensa.kernels import TokenInt8Linear
from condensa.objectives import Decode, Prefill, build_objective, objective_names
from condensa.objectives.decode import prompt_ids

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def llama():
    from tests.optim.test_oneshot import tiny_llama

    return tiny_llama(layers=1)


TOKENS = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(1))


def test_decode_and_prefill_are_registered_with_their_options():
    assert {"decode", "prefill"} <= set(objective_names())
    assert build_objective("decode", {"new_tokens": 4, "int8": True}) == Decode(
        new_tokens=4, int8=True
    )


def test_decode_measures_tokens_per_second_and_prefill_seconds(llama):
    decode = Decode(prompt=8, new_tokens=3, repeats=2)(llama, TOKENS)
    prefill = Prefill(prompt=8, repeats=2)(llama, TOKENS)
    assert decode.unit == "tokens/s" and decode.value > 0 and len(decode.samples) == 2
    assert prefill.unit == "s" and prefill.value > 0 and not prefill.higher_is_better


def test_int8_times_the_per_token_kernel_and_leaves_the_model_float(llama):
    runnable = Decode(int8=True)._runnable(llama, TOKENS)
    assert isinstance(runnable.model.layers[0].mlp.up_proj, TokenInt8Linear)
    assert type(llama.model.layers[0].mlp.up_proj) is torch.nn.Linear


def test_relative_decode_speed_is_a_ratio_near_one_for_the_same_model(llama):
    ratio = Decode(prompt=8, new_tokens=4, repeats=3).relative(llama, llama, TOKENS, rounds=3)
    assert ratio.unit == "x" and 0.2 < ratio.value < 5


def test_prompt_ids_take_the_first_row_and_refuse_float_inputs():
    assert prompt_ids({"input_ids": TOKENS}, 5).shape == (1, 5)
    assert torch.equal(prompt_ids(TOKENS[0], 50), TOKENS[:1])
    with pytest.raises(ConfigError, match="need token ids"):
        prompt_ids(torch.randn(1, 8), 4)


@pytest.mark.parametrize("field", ["prompt", "new_tokens"])
def test_bad_lengths_are_refused(field):
    with pytest.raises(ConfigError, match=field):
        Decode(**{field: 0})
