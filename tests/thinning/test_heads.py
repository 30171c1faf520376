"""HeadPrune: whole attention heads masked, then removed by thinning with head counts."""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, SelectionError, schemes
from condensa.functional import n_keep
from condensa.inputs import output_tensors, run_forward
from condensa.schemes.attention import HeadLayout
from condensa.thinning import thin_report
from tests import architectures as A


def _same(a, b, x):
    with torch.no_grad():
        ours = output_tensors(run_forward(a.eval(), x))
        pairs = zip(ours, output_tensors(run_forward(b.eval(), x)), strict=True)
        return all(torch.allclose(p, q, atol=1e-5, rtol=1e-4) for p, q in pairs)


@pytest.mark.parametrize(
    "name, attr, counter", [("vit", "attn", "num_heads"), ("bert", None, None)]
)
def test_head_prune_removes_heads_with_equal_outputs(name, attr, counter):
    if name == "bert":
        pytest.importorskip("transformers")
    model, x = A.build(name)
    masked = condensa.compress(model, schemes.HeadPrune(0.5), x)
    report = thin_report(masked, x)
    assert sum(report.heads.values()) == 4  # half of 2 modules x 4 heads
    assert _same(report.model, masked, x)
    if name == "vit":
        attn = report.model.blocks[0].attn
        assert attn.num_heads == 4 - report.heads["blocks.0.attn"]
        assert attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim
        assert attn.proj.in_features == attn.num_heads * attn.head_dim
    else:
        self_attn = report.model.encoder.layer[0].attention.self
        heads = self_attn.num_attention_heads
        assert heads == 4 - report.heads["encoder.layer.0.attention.self"]
        assert self_attn.all_head_size == heads * 8 == self_attn.query.out_features
        assert report.model.encoder.layer[0].attention.output.dense.in_features == heads * 8


def test_head_prune_masks_query_key_and_value_rows_of_the_same_heads():
    model, x = A.build("vit")
    masked = condensa.compress(model, schemes.HeadPrune(0.25, allocation="uniform"))
    keep = masked.blocks[0].attn.qkv.parametrizations.weight[0].mask[:, 0]
    per_head = keep.reshape(3, 4, 8)  # (q/k/v, heads, head_dim)
    assert torch.equal(per_head[0], per_head[1]) and torch.equal(per_head[1], per_head[2])
    assert int((~per_head[0].all(dim=1)).sum()) == 1  # one of four heads per module


def test_global_head_ranking_keeps_every_module_alive():
    model, x = A.build("vit")
    with torch.no_grad():  # module 0's heads are tiny: global ranking prefers them
        model.blocks[0].attn.qkv.weight.mul_(1e-3)
    masked = condensa.compress(model, schemes.HeadPrune(0.7), x)
    report = thin_report(masked, x)
    assert report.model.blocks[0].attn.num_heads == 1  # its best head is protected
    assert sum(report.heads.values()) == 8 - n_keep(8, 0.7)


def test_head_prune_without_attention_is_a_selection_error():
    with pytest.raises(SelectionError, match="no attention module.*register_attention"):
        condensa.compress(nn.Sequential(nn.Linear(4, 4)), schemes.HeadPrune(0.5))


def test_head_prune_spec_round_trip():
    scheme = schemes.HeadPrune(0.3, allocation="uniform", exclude=["blocks.0"])
    assert schemes.from_dict(scheme.to_dict()) == scheme
    with pytest.raises(ConfigError, match="allocation must be"):
        schemes.HeadPrune(0.3, allocation="bogus")


def test_registered_attention_layout_is_pruned_and_thinned():
    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.h, self.d = 2, 4
            self.inp = nn.Linear(8, 3 * 8)
            self.out = nn.Linear(8, 8)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.inp(x).reshape(b, n, 3, self.h, self.d).permute(2, 0, 3, 1, 4)
            y = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
            return self.out(y.transpose(1, 2).reshape(b, n, self.h * self.d))

    def describe(name, module):
        if isinstance(module, Mine):
            return HeadLayout(
                name, module.h, module.d, ((f"{name}inp", 3),), (f"{name}inp", 2), (("h", "heads"),)
            )
        return None

    from condensa.schemes.attention import ATTENTION

    ATTENTION.register(describe)
    try:
        torch.manual_seed(0)
        x = torch.randn(2, 5, 8)
        masked = condensa.compress(Mine(), schemes.HeadPrune(0.5), x)
        report = thin_report(masked, x)
        assert report.model.h == 1 and report.model.inp.out_features == 12
        assert report.model.out.in_features == 4
        assert _same(report.model, masked, x)
    finally:
        ATTENTION._describers.remove(describe)


def test_every_head_pruned_is_refused():
    model, x = A.build("vit")
    masked = condensa.compress(model, schemes.HeadPrune(0.5), x)
    with torch.no_grad():
        masked.blocks[0].attn.qkv.parametrizations.weight[0].mask.zero_()
        masked.blocks[0].attn.qkv.parametrizations.bias[0].mask.zero_()
    with pytest.raises(ConfigError, match="every head of 'blocks.0.attn'"):
        thin_report(masked, x)


@pytest.mark.parametrize(
    "make, counter", [(A.hf_vit, "num_attention_heads"), (A.distilbert, "n_heads")]
)
def test_hugging_face_q_proj_and_q_lin_layouts_thin_heads(make, counter):
    """Recent HF attention (q_proj/k_proj/v_proj, o_proj) and DistilBERT (q_lin...)."""
    pytest.importorskip("transformers")
    model, x = make()
    masked = condensa.compress(
        model, schemes.Compose([schemes.StructurePrune(0.3), schemes.HeadPrune(0.5)]), x
    )
    report = thin_report(masked, x)
    assert sum(report.heads.values()) == 4
    counts = [
        getattr(m, counter)
        for m in report.model.modules()
        if hasattr(m, counter) and isinstance(getattr(m, counter), int)
    ]
    assert sum(counts) == 8 - 4
    assert _same(report.model, masked, x)


def test_grouped_query_attention_is_not_mistaken_for_equal_heads():
    from condensa.schemes.attention import separate_qkv

    class GQA(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_attention_heads = 4
            self.q_proj, self.k_proj, self.v_proj = (
                nn.Linear(16, 16),
                nn.Linear(16, 8),
                nn.Linear(16, 8),
            )

    assert separate_qkv("", GQA()) is None
