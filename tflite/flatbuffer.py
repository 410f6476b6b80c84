"""A ``.tflite`` flatbuffer as TFLite's Python objects and back, its buffers aligned as TFLiteConverter aligns them.

The schema asks for 16-byte aligned buffer data (``force_align: 16``); the
flatbuffers Python builder ignores that and aligns a byte vector only as its
4-byte length prefix needs, so a file rewritten through ``flatbuffer_utils``
had its weights at any multiple of 4.
"""

import flatbuffers
import numpy as np

BUFFER_ALIGNMENT = 16


class _AlignedBuilder(flatbuffers.Builder):
    """Writes every byte vector (buffer data, custom options) at a multiple of ``BUFFER_ALIGNMENT``."""

    def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers' name, called by the schema's Pack
        if x.dtype != np.uint8:
            return super().CreateNumpyVector(x)
        payload = np.ascontiguousarray(x).tobytes()
        self.StartVector(1, len(payload), BUFFER_ALIGNMENT)
        self.head = self.head - len(payload)
        self.Bytes[self.head:self.head + len(payload)] = payload
        self.vectorNumElems = len(payload)
        return self.EndVector()


def model_object(content):
    """The ``ModelT`` of ``.tflite`` bytes, to edit."""
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(content))


def model_bytes(model):
    """The ``.tflite`` bytes of a ``ModelT``, buffers 16-byte aligned."""
    builder = _AlignedBuilder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
