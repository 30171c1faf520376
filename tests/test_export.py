"""ONNX export of a thinned model computes what the PyTorch model computes."""

import pytest
import torch

import condensa
from condensa import schemes, zoo

onnxruntime = pytest.importorskip("onnxruntime")


def test_onnx_export_of_thinned_model_matches_pytorch(tmp_path):
    """The exported graph is the thinned model and reproduces PyTorch's outputs."""
    torch.manual_seed(0)
    model = zoo.DigitsCNN(width=0.5)
    masked = condensa.compress(model, schemes.FilterPrune(0.5)).eval()
    x = torch.randn(3, 1, 8, 8)
    path = condensa.export_onnx(masked, x, tmp_path / "model.onnx")
    import onnx

    graph = onnx.load(str(path)).graph
    exported = sum(int(torch.tensor(list(i.dims)).prod()) for i in graph.initializer)
    thinned = condensa.thin(masked, x)
    assert exported <= sum(p.numel() for p in thinned.parameters()) + sum(
        b.numel() for b in thinned.buffers()
    )
    assert exported < sum(p.numel() for p in model.parameters())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = torch.randn(5, 1, 8, 8)  # a different batch size: the batch axis is dynamic
    (out,) = session.run(None, {"input": batch.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), masked(batch), atol=1e-4)
