"""Export the deployable model to ONNX and check it against PyTorch (optional extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from condensa.atomic import atomic_path
from condensa.errors import CondensaError


def export_onnx(
    model: nn.Module,
    example_input: torch.Tensor,
    path: str | Path,
    *,
    atol: float = 1e-4,
    opset: int = 17,
) -> Path:
    """Thin ``model`` (or bake its masks), export it to ONNX, and verify with onnxruntime.

    Args:
        model: a compressed or plain model.
        example_input: one batch; the batch dimension is exported as dynamic.
        path: destination ``.onnx`` file.
        atol: largest allowed difference between onnxruntime and PyTorch outputs.
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        CondensaError: the ``onnx``/``onnxruntime`` extra is missing, or the exported
            model's outputs differ from PyTorch's by more than ``atol``.

    """
    try:
        import onnxruntime
    except ImportError:
        raise CondensaError("ONNX export needs the extra: pip install 'condensa[onnx]'") from None
    from condensa.objectives import deployable

    path = Path(path)
    runnable = deployable(model, example_input).eval()
    with torch.no_grad():
        expected = runnable(example_input)
    if not isinstance(expected, torch.Tensor):
        raise CondensaError("ONNX export supports models with a single tensor output")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a failed export or check never replaces a good file
        torch.onnx.export(
            runnable,
            (example_input,),
            str(tmp),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"input": example_input.detach().cpu().numpy()})
        worst = float(np.abs(got - expected.detach().cpu().numpy()).max())
        if worst > atol:
            raise CondensaError(f"ONNX outputs differ from PyTorch by {worst:.3g} (> atol {atol})")
    return path
