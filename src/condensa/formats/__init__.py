"""Stored formats: one registry of the parametrizations that hold compressed tensors.

See :mod:`condensa.formats.base` for the protocol and docs/extending.md for adding one.
"""

from condensa.formats.base import (
    PLAIN_ARRAY_DTYPES,
    Storage,
    StoredFormat,
    channel_scale,
    channels,
    check_axis,
    check_scales,
    decode_plain,
    encode_plain,
    format_keyed,
    format_named,
    formats,
    holding,
    register_format,
    storing,
    valid_specs,
)
from condensa.formats.builtins import CAST_CODES, FakeCast, FakeQuantInt8, Mask, kept_by
from condensa.formats.groups import FakeQuantGroup

__all__ = [
    "CAST_CODES",
    "PLAIN_ARRAY_DTYPES",
    "FakeCast",
    "FakeQuantGroup",
    "FakeQuantInt8",
    "Mask",
    "Storage",
    "StoredFormat",
    "channel_scale",
    "channels",
    "check_axis",
    "check_scales",
    "decode_plain",
    "encode_plain",
    "format_keyed",
    "format_named",
    "formats",
    "holding",
    "kept_by",
    "register_format",
    "storing",
    "valid_specs",
]
