"""Export the deployable model to ONNX and check it against PyTorch (optional extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from condensa.atomic import atomic_path
from condensa.errors import CondensaError
from condensa.inputs import Inputs, check_inputs, output_tensors, run_forward


class _Flat(nn.Module):
    """Positional tensors in, a tuple of output tensors out: what ONNX export needs."""

    def __init__(self, model: nn.Module, keys: list[str] | None) -> None:
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = dict(zip(self.keys, args, strict=True)) if self.keys is not None else args
        return tuple(output_tensors(run_forward(self.model, inputs)))


def export_onnx(
    model: nn.Module,
    example_inputs: Inputs,
    path: str | Path,
    *,
    atol: float = 1e-4,
    opset: int = 17,
) -> Path:
    """Thin ``model`` (or bake its masks), export it to ONNX, and verify with onnxruntime.

    Args:
        model: a compressed or plain model.
        example_inputs: one batch: a tensor, a tuple of tensors or a dict of keyword
            tensors (their names become the ONNX input names); the batch dimension is
            exported as dynamic. Every floating tensor of the output is an ONNX output.
        path: destination ``.onnx`` file.
        atol: largest allowed difference between onnxruntime and PyTorch outputs.
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        CondensaError: the ``onnx``/``onnxruntime`` extra is missing, an input is not a
            tensor, or the exported model's outputs differ from PyTorch's by more than
            ``atol``.

    """
    try:
        import onnxruntime
    except ImportError:
        raise CondensaError("ONNX export needs the extra: pip install 'condensa[onnx]'") from None
    from condensa.thinning import deployable

    check_inputs(example_inputs)
    path = Path(path)
    runnable = deployable(model, example_inputs).eval()
    if isinstance(example_inputs, Mapping):
        keys: list[str] | None = list(example_inputs)
        args = tuple(example_inputs.values())
    else:
        keys = None
        args = (
            (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
        )
    if not all(isinstance(a, torch.Tensor) for a in args):
        raise CondensaError("ONNX export needs every example input to be a tensor")
    flat = _Flat(runnable, keys).eval()
    with torch.no_grad():
        expected = flat(*args)
    if not expected:
        raise CondensaError("the model returns no floating tensor to export")
    names = keys or (["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))])
    outputs = ["output"] if len(expected) == 1 else [f"output_{i}" for i in range(len(expected))]
    axes = {n: {0: "batch"} for n, a in zip(names, args, strict=True) if a.dim()}
    axes.update({n: {0: "batch"} for n, e in zip(outputs, expected, strict=True) if e.dim()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a failed export or check never replaces a good file
        try:
            torch.onnx.export(
                flat,
                args,
                str(tmp),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        except Exception as exc:  # noqa: BLE001 - the exporter's own failures, named
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise CondensaError(
                f"the ONNX exporter cannot convert {type(model).__name__}: "
                f"{type(exc).__name__}: {first}"
            ) from None
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        feed = {n: a.detach().cpu().numpy() for n, a in zip(names, args, strict=True)}
        got = session.run(None, feed)
        worst = max(
            float(np.abs(g - e.detach().cpu().numpy()).max()) if e.numel() else 0.0
            for g, e in zip(got, expected, strict=True)
        )
        if worst > atol:
            raise CondensaError(f"ONNX outputs differ from PyTorch by {worst:.3g} (> atol {atol})")
    return path
