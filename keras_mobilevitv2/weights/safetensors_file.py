"""Reads ``.safetensors`` files (a JSON header, then raw little-endian tensors) into numpy."""

import json
import struct

import numpy as np

from .torch_zip import CheckpointError

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16",
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


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
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not a safetensors file (bad header: {error})") from None
    body = memoryview(data)[8 + header_size:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
        start, end = info["data_offsets"]
        if end > len(body):
            raise CheckpointError(f"{path}: tensor {name!r} reads past the end of the file (truncated?)")
        shape = tuple(info["shape"])
        raw = body[start:end]
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype)
        if array.size != int(np.prod(shape)):
            raise CheckpointError(f"{path}: tensor {name!r} has {array.size} values for shape {shape}")
        tensors[name] = array.reshape(shape)
    return tensors
