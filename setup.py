"""keras_mobilevitv2: MobileViTv2 and MobileViT for Keras and TensorFlow Lite."""

from setuptools import find_packages, setup

EXTRAS = {
    # Quantization-aware training runs on tf_keras (Keras 2) models.
    "qat": ["tf-keras>=2.21,<2.22", "tensorflow-model-optimization==0.8.1"],
    "litert": ["ai-edge-litert>=2.3"],
    # Reading images of every format, the bundled samples (digits, photos), plots, COCO evaluation.
    "data": ["pillow>=10", "scikit-learn>=1.3", "scikit-image>=0.22", "matplotlib>=3.7", "pycocotools>=2.0.7"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})
# Peers measured by benchmarks/ only.
EXTRAS["bench"] = ["kimm>=0.2.5"]
EXTRAS["test"] = EXTRAS["all"] + ["pytest>=8", "pytest-xdist>=3.5"]

setup(
    name="keras-mobilevitv2",
    version="0.1.0",
    description="MobileViTv2 and MobileViT for Keras 3, tf_keras and TensorFlow Lite",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["keras_mobilevitv2", "keras_mobilevitv2.*"]) + ["mobilevitv2_tflite", "mobilevitv2_tflite.schema"],
    # The folder is tflite/, but an import named tflite would shadow the PyPI package of that name.
    package_dir={"mobilevitv2_tflite": "tflite"},
    install_requires=["tensorflow>=2.21,<2.22", "keras>=3.12", "numpy>=1.26", "tensorboard>=2.20"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["mobilevitv2=keras_mobilevitv2.cli:main"]},
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3.11", "Topic :: Scientific/Engineering :: Image Recognition"],
)
