"""The model's facts inside the ``.tflite`` file, as TFLite metadata entries.

The flatbuffer's ``metadata`` list gets an entry named ``keras_mobilevitv2``
whose buffer holds UTF-8 JSON: the preprocessing facts of the Keras model
(input size, crop fraction, interpolation, input range, class names,
architecture) and how the file was converted. Interpreters ignore it; ``predict``,
``eval`` and the Android app read it from the file alone. Beside it the same
facts go into the standard TFLite Metadata that MediaPipe Tasks and the LiteRT
tools read (``standard_metadata``), with the labels in a zip appended to the file.
"""

import json
import os
import struct

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from .flatbuffer import model_bytes, model_object
from .standard_metadata import STANDARD_METADATA_NAME, append_associated_files, standard_metadata

METADATA_NAME = "keras_mobilevitv2"


class MetadataError(ValueError):
    """Bytes whose metadata cannot be read: not a TFLite model, or a damaged one; the message names the file."""


def add_metadata(content, facts):
    """``content`` (a converted model's bytes, no metadata of this module yet) with ``facts`` (a JSON-able dict)
    stored under ``METADATA_NAME``, and the standard TFLite Metadata built from them, its files appended."""
    model = model_object(content)
    _set_entry(model, METADATA_NAME, json.dumps(facts, sort_keys=True).encode("utf-8"))
    graph = model.subgraphs[0]
    tensor_type = {index: graph.tensors[index].type for index in (*graph.inputs, *graph.outputs)}
    names = {}
    for signature in model.signatureDefs or []:
        names.update({output.tensorIndex: _text(output.name) for output in signature.outputs})
    outputs = [(names.get(index, _text(graph.tensors[index].name)), tensor_type[index],
                [int(s) for s in graph.tensors[index].shape]) for index in graph.outputs]
    standard, files = standard_metadata(facts, tensor_type[graph.inputs[0]], outputs)
    _set_entry(model, STANDARD_METADATA_NAME, standard)
    return append_associated_files(model_bytes(model), files)


def _text(name):
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def _set_entry(model, name, data):
    """Stores ``data`` in a new buffer under the metadata entry ``name``, replacing an entry of that name."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(bytes(data), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) != name]
    model.metadata.append(entry)


def read_metadata(model_bytes_or_path):
    """The facts stored by ``add_metadata``, or None when the file has none.

    ``MetadataError`` (a ValueError) for bytes that are not a TFLite model or whose
    flatbuffer is damaged: offsets, vector lengths and the buffer index are checked
    against the file, as the flatbuffers library reads whatever an offset points to.
    """
    data, where = _file_bytes(model_bytes_or_path)
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


def _file_bytes(model_bytes_or_path):
    if isinstance(model_bytes_or_path, (bytes, bytearray)):
        return bytearray(model_bytes_or_path), "the model bytes"
    where = os.fspath(model_bytes_or_path)
    with open(where, "rb") as file:
        return bytearray(file.read()), where


def _reason(error):
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def read_standard_metadata_of(model_bytes_or_path):
    """The standard TFLite Metadata of a file (``standard_metadata.read_standard_metadata``), or None."""
    from .standard_metadata import read_standard_metadata

    data, where = _file_bytes(model_bytes_or_path)
    if bytes(data[4:8]) != b"TFL3":
        raise MetadataError(f"{where}: not a TFLite model (no TFL3 file identifier)")
    try:
        raw = _metadata_bytes(data, where, STANDARD_METADATA_NAME)
        return None if raw is None else read_standard_metadata(raw, where)
    except MetadataError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as error:
        raise MetadataError(f"{where}: damaged {STANDARD_METADATA_NAME} ({_reason(error)})") from None


def _metadata_bytes(data, where, name=METADATA_NAME):
    """The bytes of the buffer named by the ``name`` entry, or None."""
    model = schema.Model.GetRootAsModel(data, 0)
    # A vector's entries are 4-byte offsets at least: a longer vector than that is a damaged length.
    entries, buffers = model.MetadataLength(), model.BuffersLength()
    if max(entries, buffers) * 4 > len(data):
        raise MetadataError(f"{where}: a damaged TFLite model (a vector of {max(entries, buffers)} entries)")
    for i in range(entries):
        entry = model.Metadata(i)
        if entry.Name() != name.encode():
            continue
        index = entry.Buffer()
        if not 0 <= index < buffers:
            raise MetadataError(f"{where}: the {name} metadata names buffer {index} of {buffers}")
        buffer = model.Buffers(index)
        if buffer.DataLength() == 0 and buffer.Offset() > 1:  # a model over 2 GB keeps its buffers after the flatbuffer
            start, size = buffer.Offset(), buffer.Size()
            if start + size > len(data):
                raise MetadataError(f"{where}: the {name} metadata lies past the end of the file")
            return bytes(data[start:start + size])
        return bytes(buffer.DataAsNumpy()) if buffer.DataLength() else b""
    return None
