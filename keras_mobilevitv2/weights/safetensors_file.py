"""Reads ``.safetensors`` files (a JSON header, then raw little-endian tensors) into numpy.

Every entry of the header is checked before anything is decoded: its dtype, a shape
of non-negative integers whose bytes equal its byte range, and a byte range inside
the file that overlaps no other tensor's.
"""

import json
import math
import struct

import numpy as np

from .torch_zip import _MAX_EXPANSION, _SLACK, CheckpointError, _reason, _shown

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16",
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_MAX_DIMS = 64  # numpy's limit


def _is_int(value):
    return type(value) is int


def _entry(path, name, info, body_size):
    """``(dtype, shape, start, end)`` of one header entry, checked against the file."""
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: tensor {_shown(name)} is described by {_shown(info)}, not an object")
    dtype = info.get("dtype")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise CheckpointError(f"{path}: tensor {_shown(name)} has unsupported dtype {_shown(dtype, 20)}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (isinstance(shape, list) and len(shape) <= _MAX_DIMS and all(_is_int(s) and s >= 0 for s in shape)):
        raise CheckpointError(f"{path}: tensor {_shown(name)} has a shape that is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= body_size):
        raise CheckpointError(f"{path}: tensor {_shown(name)} reads outside the file (truncated?)")
    start, end = offsets
    itemsize = 2 if dtype == "BF16" else np.dtype(_DTYPES[dtype]).itemsize
    if math.prod(shape) * itemsize != end - start:  # Python integers: a product cannot overflow
        raise CheckpointError(f"{path}: tensor {_shown(name)} has {end - start} bytes, not those of its shape")
    if math.prod(max(s, 1) for s in shape) * itemsize > _MAX_EXPANSION * body_size + _SLACK:  # an empty tensor's
        raise CheckpointError(f"{path}: tensor {_shown(name)} has a shape too large for numpy")
    return _DTYPES[dtype], tuple(shape), start, end


def read_safetensors(path):
    """``{name: numpy array}`` of a ``.safetensors`` file."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) < 8:
        raise CheckpointError(f"{path}: not a safetensors file (only {len(data)} bytes)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > len(data) - 8:
        raise CheckpointError(f"{path}: not a safetensors file, or truncated (header of {header_size} bytes)")
    try:
        header = json.loads(data[8:8 + header_size])
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, too many digits; nesting
        raise CheckpointError(f"{path}: not a safetensors file (bad header: {_reason(error)})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (the header is {_shown(header)}, not an object)")
    body = memoryview(data)[8 + header_size:]
    entries = {name: _entry(path, name, info, len(body)) for name, info in header.items() if name != "__metadata__"}
    previous_end, previous = 0, None
    for name, (_, _, start, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if end == start:
            continue  # an empty tensor overlaps nothing
        if start < previous_end:
            raise CheckpointError(f"{path}: tensors {_shown(previous)} and {_shown(name)} overlap")
        previous_end, previous = end, name
    tensors = {}
    for name, (dtype, shape, start, end) in entries.items():
        raw = body[start:end]
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype)
        tensors[name] = array.reshape(shape)
    return tensors
