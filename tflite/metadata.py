"""The model's facts inside the ``.tflite`` file, as a TFLite metadata entry.

The flatbuffer's ``metadata`` list gets an entry named ``keras_mobilevitv2``
whose buffer holds UTF-8 JSON: the preprocessing facts of the Keras model
(input size, crop fraction, interpolation, input range, class names,
architecture) and how the file was converted. Interpreters ignore it; ``predict``,
``eval`` and the Android app read it from the file alone.
"""

import json

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

METADATA_NAME = "keras_mobilevitv2"


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
    """The facts stored by ``add_metadata``, or None when the file has none; ValueError for a non-TFLite file."""
    if isinstance(model_bytes_or_path, (bytes, bytearray)):
        data = bytearray(model_bytes_or_path)
    else:
        with open(model_bytes_or_path, "rb") as file:
            data = bytearray(file.read())
    if bytes(data[4:8]) != b"TFL3":
        raise ValueError("not a TFLite model (no TFL3 file identifier)")
    model = schema.Model.GetRootAsModel(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            buffer = model.Buffers(entry.Buffer())
            return json.loads(bytes(buffer.DataAsNumpy()).decode("utf-8"))
    return None
