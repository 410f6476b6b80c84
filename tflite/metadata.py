"""The model's facts inside the ``.tflite`` file, as a TFLite metadata entry.

The flatbuffer's ``metadata`` list gets an entry named ``keras_mobilevitv2``
whose buffer holds UTF-8 JSON: the preprocessing facts of the Keras model
(input size, crop fraction, interpolation, input range, class names,
architecture) and how the file was converted. Interpreters ignore it; ``predict``,
``eval`` and the Android app read it from the file alone.
"""

import json
import os
import struct

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

METADATA_NAME = "keras_mobilevitv2"


class MetadataError(ValueError):
    """Bytes whose metadata cannot be read: not a TFLite model, or a damaged one; the message names the file."""


def add_metadata(model_bytes, facts):
    """``model_bytes`` with ``facts`` (a JSON-able dict) stored under ``METADATA_NAME``."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(facts, sort_keys=True).encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(model_bytes_or_path):
    """The facts stored by ``add_metadata``, or None when the file has none.

    ``MetadataError`` (a ValueError) for bytes that are not a TFLite model or whose
    flatbuffer is damaged: offsets, vector lengths and the buffer index are checked
    against the file, as the flatbuffers library reads whatever an offset points to.
    """
    if isinstance(model_bytes_or_path, (bytes, bytearray)):
        data, where = bytearray(model_bytes_or_path), "the model bytes"
    else:
        where = os.fspath(model_bytes_or_path)
        with open(where, "rb") as file:
            data = bytearray(file.read())
    if bytes(data[4:8]) != b"TFL3":
        raise MetadataError(f"{where}: not a TFLite model (no TFL3 file identifier)")
    try:
        raw = _metadata_bytes(data, where)
    except MetadataError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as error:  # offsets off the flatbuffer
        raise MetadataError(f"{where}: a damaged TFLite model ({_reason(error)})") from None
    if raw is None:
        return None
    try:
        facts = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError, JSONDecodeError; nesting too deep
        raise MetadataError(f"{where}: the {METADATA_NAME} metadata is not JSON ({_reason(error)})") from None
    if not isinstance(facts, dict):
        raise MetadataError(f"{where}: the {METADATA_NAME} metadata is a {type(facts).__name__}, not an object")
    return facts


def _reason(error):
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _metadata_bytes(data, where):
    """The bytes of the buffer named by the ``METADATA_NAME`` entry, or None."""
    model = schema.Model.GetRootAsModel(data, 0)
    # A vector's entries are 4-byte offsets at least: a longer vector than that is a damaged length.
    entries, buffers = model.MetadataLength(), model.BuffersLength()
    if max(entries, buffers) * 4 > len(data):
        raise MetadataError(f"{where}: a damaged TFLite model (a vector of {max(entries, buffers)} entries)")
    for i in range(entries):
        entry = model.Metadata(i)
        if entry.Name() != METADATA_NAME.encode():
            continue
        index = entry.Buffer()
        if not 0 <= index < buffers:
            raise MetadataError(f"{where}: the {METADATA_NAME} metadata names buffer {index} of {buffers}")
        buffer = model.Buffers(index)
        if buffer.DataLength() == 0 and buffer.Offset() > 1:  # a model over 2 GB keeps its buffers after the flatbuffer
            start, size = buffer.Offset(), buffer.Size()
            if start + size > len(data):
                raise MetadataError(f"{where}: the {METADATA_NAME} metadata lies past the end of the file")
            return bytes(data[start:start + size])
        return bytes(buffer.DataAsNumpy()) if buffer.DataLength() else b""
    return None
