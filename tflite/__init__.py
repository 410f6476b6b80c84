"""TFLite conversion, evaluation and benchmarking of keras_mobilevitv2 models.

Installed as ``mobilevitv2_tflite``: an import named ``tflite`` would shadow the
PyPI package of that name.
"""
