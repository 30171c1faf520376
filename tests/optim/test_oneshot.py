"""One-shot methods (Wanda, SparseGPT, GPTQ) on a tiny random Llama with grouped key/value heads."""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, schemes
from condensa.functional.groups import dequantize_groups, group_params, qrange, quantize_groups
from condensa.functional.reconstruct import gptq, nm_keep, row_mask, sparsegpt, wanda_scores
from condensa.optim import METHODS, build_method
from condensa.optim.calibration import blocks_of, capture_inputs, walk
from condensa.optim.causal_lm import CausalLMTrainer
from condensa.optim.oneshot import GPTQ, SparseGPT, Wanda

transformers = pytest.importorskip("transformers")

VOCAB = 96


def tiny_llama(layers=2, seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    return transformers.LlamaForCausalLM(config).eval()


def batches(n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (2, 24), generator=g) for _ in range(n)]


class CharTokenizer:
    """Characters to ids below ``vocab`` (a test double for a Hugging Face tokenizer)."""

    def __init__(self, vocab=VOCAB):
        self.vocab = vocab

    def encode(self, text, add_special_tokens=False):
        return [ord(c) % self.vocab for c in text]


TEXT = [f"the quick brown fox jumps over the lazy dog number {i} again" for i in range(60)]
PRUNE = schemes.Prune(0.5, allocation="uniform", types=["Linear"], exclude=[r"^lm_head$"])


def linears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and "layers" in n}


@pytest.mark.parametrize("method", [Wanda, SparseGPT])
def test_unstructured_one_shot_prunes_half_of_every_row(method):
    """Each block Linear keeps exactly half of every output row; the input model is untouched."""
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = method().compress(model, PRUNE, batches())
    for name, module in linears(result.model).items():
        kept = (module.weight != 0).sum(dim=1)
        assert torch.all(kept == module.in_features // 2) or method is SparseGPT, name
        assert condensa.stats(result.model).sparsity > 0.4
    if method is SparseGPT:  # masks chosen per column block: half of every block overall
        for module in linears(result.model).values():
            assert (module.weight == 0).float().mean() == pytest.approx(0.5, abs=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_wanda_mask_is_the_row_top_half_of_weight_times_input_norm():
    """In the first block, Wanda keeps the largest |w| * ||x|| of each row of q_proj."""
    model = tiny_llama()
    data = batches()
    calls = capture_inputs(model, model.model.layers[0], data)
    hidden = torch.cat([args[0] for args, _ in calls])
    x = model.model.layers[0].input_layernorm(hidden).reshape(-1, 64)
    w = model.model.layers[0].self_attn.q_proj.weight.detach()
    expected = row_mask(w.abs() * x.norm(dim=0), 0.5)
    result = Wanda().compress(model, PRUNE, data)
    got = result.model.model.layers[0].self_attn.q_proj.weight != 0
    assert torch.equal(got, expected)


@pytest.mark.parametrize("method", [Wanda, SparseGPT])
def test_nm_one_shot_keeps_two_of_every_four_inputs(method):
    """NMPrune(2, 4): every group of 4 consecutive inputs keeps exactly 2 weights."""
    model = tiny_llama()
    scheme = schemes.NMPrune(2, 4, types=["Linear"], exclude=[r"^lm_head$"])
    result = method().compress(model, scheme, batches())
    for module in linears(result.model).values():
        groups = (module.weight != 0).reshape(module.out_features, -1, 4).sum(dim=2)
        assert torch.all(groups == 2)


def _layer_problem(seed=0, out=32, cols=128, n=512):
    g = torch.Generator().manual_seed(seed)
    scales = torch.rand(cols, generator=g) * 3 + 0.1
    x = torch.randn(n, cols, generator=g) @ (torch.randn(cols, cols, generator=g) / 12)
    x = x + torch.randn(n, cols, generator=g) * scales
    w = torch.randn(out, cols, generator=g)
    return w, x, x.T @ x


def _error(w, x, approx):
    return float(((x @ w.T - x @ approx.T) ** 2).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparsegpt_and_wanda_reconstruct_better_than_magnitude(seed):
    """On correlated inputs, both one-shot rules give a smaller output error than |w|."""
    w, x, h = _layer_problem(seed)
    magnitude = _error(w, x, w * row_mask(w.abs(), 0.5))
    wanda = _error(w, x, w * row_mask(wanda_scores(w, h, x.shape[0]), 0.5))
    pruned, keep = sparsegpt(w, h, sparsity=0.5)
    assert float(keep.float().mean()) == pytest.approx(0.5)
    assert torch.all(pruned[~keep] == 0)
    assert wanda < magnitude and _error(w, x, pruned) < magnitude
    pruned_nm, keep_nm = sparsegpt(w, h, nm=(2, 4))
    assert torch.all(keep_nm.reshape(32, -1, 4).sum(2) == 2)
    assert _error(w, x, pruned_nm) < _error(w, x, w * nm_keep(w.abs(), 2, 4))


@pytest.mark.parametrize("group", [None, 32])
@pytest.mark.parametrize("symmetric", [True, False])
def test_gptq_beats_round_to_nearest_on_layer_outputs(group, symmetric):
    """GPTQ's int4 levels give a smaller output error than round-to-nearest with the same groups."""
    w, x, h = _layer_problem()
    size = group or w.shape[1]
    bounds = qrange(4, symmetric)
    scale, zero = group_params(w, size, 4, symmetric)
    rtn = dequantize_groups(
        quantize_groups(w, scale, zero, size, bounds), scale, zero, size, torch.float32
    )
    for act_order in (False, True):
        q, gscale, gzero, used = gptq(
            w, h, bits=4, symmetric=symmetric, group_size=group, act_order=act_order
        )
        assert used == size and q.min() >= bounds[0] and q.max() <= bounds[1]
        assert gscale.shape == gzero.shape == (32, 128 // size)
        approx = dequantize_groups(q, gscale, gzero, used, torch.float32)
        assert _error(w, x, approx) < _error(w, x, rtn)


def test_act_order_keeps_the_original_groups_and_helps_when_inputs_are_uneven():
    """Static groups: the scales are round-to-nearest's; loud inputs first cut the error."""
    w, x, _ = _layer_problem()
    x = x * torch.linspace(0.1, 10, x.shape[1])[torch.randperm(x.shape[1])]  # uneven inputs
    h = x.T @ x
    scale, zero = group_params(w, 32, 4, False)
    q, gscale, gzero, _ = gptq(w, h, bits=4, group_size=32, act_order=True)
    assert torch.equal(gscale, scale) and torch.equal(gzero, zero)
    ordered = dequantize_groups(q, gscale, gzero, 32, torch.float32)
    q0, s0, z0, _ = gptq(w, h, bits=4, group_size=32)
    natural = dequantize_groups(q0, s0, z0, 32, torch.float32)
    assert _error(w, x, ordered) < _error(w, x, natural)


def test_gptq_act_order_is_a_method_option_and_the_base_options_pass_through():
    """act_order is on by default; samples and damping reach the base class via **options."""
    assert GPTQ().act_order
    options = {"act_order": False, "samples": 2, "damping": 0.1}
    method = build_method("gptq", None, options, metric="perplexity")
    assert not method.act_order and method.samples == 2 and method.damping == 0.1
    with pytest.raises(ConfigError, match="act_order must be true or false"):
        GPTQ(act_order="yes")
    with pytest.raises(ConfigError, match="valid: .*act_order.*samples.*damping"):
        build_method("gptq", None, {"block_size": 64}, metric="perplexity")


def test_asymmetric_int4_fits_a_shifted_group_better():
    """All 16 levels on a group's own range: smaller error than 15 symmetric levels."""
    w = torch.rand(8, 64) * 2 - 0.2  # mostly positive
    errors = {}
    for symmetric in (True, False):
        scale, zero = group_params(w, 64, 4, symmetric)
        q = quantize_groups(w, scale, zero, 64, qrange(4, symmetric))
        errors[symmetric] = float(
            (dequantize_groups(q, scale, zero, 64, torch.float32) - w).abs().mean()
        )
        assert torch.all(
            dequantize_groups(
                torch.zeros_like(q) + zero.to(torch.int16), scale, zero, 64, torch.float32
            )
            == 0
        ), "zero stays exact"
    assert errors[False] < errors[True]


def test_gptq_model_saves_and_loads_with_equal_logits(tmp_path):
    """A GPTQ int4 (group 32) model round-trips through condensa.save/load bit for bit."""
    model = tiny_llama()
    scheme = schemes.Quantize("int4", group_size=32, types=["Linear"], exclude=[r"^lm_head$"])
    result = GPTQ().compress(model, scheme, batches())
    path = condensa.save(result.model, tmp_path / "q.condensa")
    loaded = condensa.load(path, model=tiny_llama())
    tokens = batches(1, seed=5)[0]
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, result.model(tokens).logits)
    assert path.stat().st_size < 0.45 * condensa.stats(model).dense_bytes


def test_one_shot_is_deterministic():
    """The same model, scheme and calibration give bit-identical weights."""
    model = tiny_llama()
    one = SparseGPT().compress(model, PRUNE, batches()).model.state_dict()
    two = SparseGPT().compress(model, PRUNE, batches()).model.state_dict()
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_later_blocks_see_the_compressed_earlier_blocks():
    """The walk feeds block 1 with block 0's output *after* block 0 was changed."""
    model = tiny_llama()
    seen = []
    for prefix, block, run in walk(model, batches()):
        hook = block.register_forward_pre_hook(lambda _, a: seen.append(a[0].clone()))
        run()
        hook.remove()
        if prefix.endswith(".0"):
            first_inputs = torch.cat(seen)
            seen.clear()
            with torch.no_grad():  # zero attention and MLP outputs: the block is the identity
                block.self_attn.o_proj.weight.zero_()
                block.mlp.down_proj.weight.zero_()
    assert torch.equal(torch.cat(seen), first_inputs)
    assert blocks_of(model)[0] == "model.layers"


def test_a_model_without_blocks_is_one_block():
    """An MLP is walked as a whole; Wanda still prunes every Linear row by half."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    data = [torch.randn(8, 16) for _ in range(3)]
    result = Wanda().compress(mlp, schemes.Prune(0.5, allocation="uniform"), data)
    assert all(
        torch.all((m.weight != 0).sum(1) == m.in_features // 2)
        for m in result.model
        if isinstance(m, nn.Linear)
    )


def test_methods_are_registered_and_built_from_options():
    """wanda, sparsegpt and gptq are in METHODS and build with their options."""
    assert {"wanda", "sparsegpt", "gptq"} <= set(METHODS)
    method = build_method("sparsegpt", None, {"samples": 8, "block_size": 64}, metric="loss")
    assert method.samples == 8 and method.block_size == 64


def test_wrong_scheme_for_the_method_is_refused_before_work():
    """wanda with a pure quantization scheme, gptq with a pure pruning: clear errors."""
    model = tiny_llama()
    with pytest.raises(ConfigError, match="'wanda' compresses with Magnitude, NM"):
        Wanda().compress(model, schemes.Quantize("int8"), batches())
    with pytest.raises(ConfigError, match="'gptq' compresses with Affine, GroupAffine"):
        GPTQ().compress(model, PRUNE, batches())


def test_a_trainer_without_calibration_is_refused():
    """A method needing calibration names the missing capability."""
    with pytest.raises(ConfigError, match="calibration_inputs"):
        Wanda(object()).compress(tiny_llama(), PRUNE)


def test_causal_lm_trainer_metrics_and_calibration():
    """Perplexity is exp(loss); calibration windows have the asked size and count."""
    trainer = CausalLMTrainer(
        CharTokenizer(), TEXT[:30], TEXT[30:], window=16, eval_tokens=64, last_words=5, batch_size=3
    )
    metrics = trainer.evaluate(tiny_llama())
    assert metrics["perplexity"] == pytest.approx(torch.tensor(metrics["loss"]).exp().item())
    assert 0 <= metrics["last_word"] <= 1 and len(trainer.last_word_items) == 5
    windows = trainer.calibration_inputs(7)
    assert [w.shape for w in windows] == [(3, 16), (3, 16), (1, 16)]
    result = SparseGPT(trainer, samples=4).compress(tiny_llama(), PRUNE)
    assert result.best_score == result.metrics["perplexity"]


def test_tokenizer_that_does_not_match_the_model_is_refused():
    """Token ids past the model's vocabulary: the message names both sizes."""
    trainer = CausalLMTrainer(CharTokenizer(vocab=1000), TEXT[:30], TEXT[30:], window=16)
    with pytest.raises(ConfigError, match="does not match the model"):
        trainer.evaluate(tiny_llama())


def test_calibration_longer_than_the_corpus_is_refused():
    """Asking for more calibration tokens than the text holds names both counts."""
    trainer = CausalLMTrainer(CharTokenizer(), TEXT[:2], TEXT[30:], window=16)
    with pytest.raises(ConfigError, match="samples of 16 need"):
        trainer.calibration_inputs(100)
