"""Token models (Hugging Face BERT): dict inputs through stats, objectives, int8 and the search."""

import pytest
import torch
from torch import nn

import condensa
from condensa import schemes
from condensa.objectives import Latency, Macs, Throughput
from condensa.quantized import int8_inference
from tests import architectures as A

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert():
    return A.build("bert")


def _compressed(model, x):
    scheme = schemes.Compose([schemes.StructurePrune(0.4), schemes.HeadPrune(0.5)])
    return condensa.compress(model, scheme, x)


def test_stats_counts_macs_from_keyword_inputs_and_integer_input_size(bert):
    model, x = bert
    by_dict = condensa.stats(model, x).macs
    by_size = condensa.stats(model, input_size=(2, 12), input_dtype=torch.long).macs
    assert by_dict == by_size > 0


@pytest.mark.parametrize(
    "make", [lambda m, x: condensa.compress(m, schemes.Prune(0.5)), _compressed]
)
def test_speed_objectives_and_int8_run_on_a_compressed_bert(bert, make):
    """Unstructured masks are baked, structured ones thinned: both measure, none fails."""
    model, x = bert
    masked = make(model, x)
    assert Throughput(batch_size=4, threads=1, warmup=0, repeats=2)(masked, x).value > 0
    assert Latency(threads=1, warmup=0, repeats=2)(masked, x).value > 0
    int8 = int8_inference(masked, x)
    assert any(
        type(m).__name__ == "Linear" and m.__module__.startswith("torch.ao") for m in int8.modules()
    )
    with torch.no_grad():
        out = int8(**x).last_hidden_state
    assert out.shape == (2, 12, 32) and torch.isfinite(out).all()


def test_effective_macs_see_thinned_heads_and_neurons(bert):
    model, x = bert
    dense = Macs("effective")(model, x).value
    assert Macs("effective")(_compressed(model, x), x).value < 0.8 * dense


class _Score:
    """A stand-in trainer: 'accuracy' falls with the fraction of weights removed."""

    def __init__(self, x):
        self.x = x

    def train(self, model, *args, **kwargs):  # pragma: no cover - dc never trains
        return model

    def evaluate(self, model):
        total = sum(p.numel() for n, p in model.named_parameters() if "weight" in n)
        zero = sum(int((p == 0).sum()) for n, p in model.named_parameters() if "weight" in n)
        return {"accuracy": 1.0 - zero / total}


@pytest.mark.slow
def test_search_compression_with_keyword_inputs(bert):
    model, x = bert
    outcome = condensa.search_compression(
        model,
        lambda s: schemes.Compose([schemes.StructurePrune(s), schemes.HeadPrune(s)]),
        trainer=_Score(x),
        objective=Macs("effective"),
        example_inputs=x,
        method="dc",
        max_drop=0.2,
        budget=3,
        seed=0,
        strategy="random",
    )
    assert outcome.search.trials and all(t.error is None for t in outcome.search.trials)
    assert isinstance(outcome.model, nn.Module)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_quantize_covers_embeddings_by_default(bert, dtype):
    model, x = bert
    quantized = condensa.compress(model, schemes.Quantize(dtype))
    assert "weight" in quantized.embeddings.word_embeddings.parametrizations
    rows = {r.name: r for r in condensa.stats(quantized).layers}
    assert (
        rows["embeddings.word_embeddings"].compressed_bytes
        < rows["embeddings.word_embeddings"].dense_bytes
    )


@pytest.mark.slow
def test_thinned_bert_exports_to_onnx_with_named_keyword_inputs(bert, tmp_path):
    """Keyword inputs become ONNX inputs by name; onnxruntime reproduces PyTorch."""
    pytest.importorskip("onnxruntime")
    import onnx

    model, x = bert
    path = condensa.export_onnx(_compressed(model, x), x, tmp_path / "bert.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
