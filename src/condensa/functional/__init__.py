"""Pure tensor math: counting, masks, scores, N:M, quantization. Nothing here mutates."""

from condensa.functional.masks import achieved_sparsity, magnitude_mask, topk_mask
from condensa.functional.nm import check_nm, check_nm_shape, nm_mask
from condensa.functional.quantize import (
    DTYPES,
    cast_roundtrip,
    check_dtype,
    dequantize_int8,
    fake_cast,
    fake_quantize_int8,
    int8_scale,
    quantize_int8,
)
from condensa.functional.scores import (
    CRITERIA,
    block_scores,
    channel_scores,
    check_block,
    check_criteria,
    expand_blocks,
    reduce,
)
from condensa.functional.sparsity import (
    align_keep,
    check_align,
    check_finite,
    check_sparsity,
    n_keep,
)

__all__ = [
    "CRITERIA",
    "DTYPES",
    "achieved_sparsity",
    "align_keep",
    "block_scores",
    "cast_roundtrip",
    "channel_scores",
    "check_align",
    "check_block",
    "check_criteria",
    "check_dtype",
    "check_finite",
    "check_nm",
    "check_nm_shape",
    "check_sparsity",
    "dequantize_int8",
    "expand_blocks",
    "fake_cast",
    "fake_quantize_int8",
    "int8_scale",
    "magnitude_mask",
    "n_keep",
    "nm_mask",
    "quantize_int8",
    "reduce",
    "topk_mask",
]
