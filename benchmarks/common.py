"""What the benchmark scripts share: converting models the way their users do, and writing tables."""

import csv
import io
import os
import platform
import sys

from keras_mobilevitv2.data import make_sample_data
from keras_mobilevitv2.files import write_text
from keras_mobilevitv2.preprocessing import PreprocessingConfig
from mobilevitv2_tflite.convert import batch_one_model, calibration_images, fixed_size_model, tflite_content


class Converter:
    """Writes fp32 / int8 files of Keras models into a folder, int8 calibrated on the digits."""

    def __init__(self, work, calibration_steps=32):
        self.work, self.calibration_steps = work, calibration_steps
        digits = os.path.join(work, "digits")
        if not os.path.isdir(digits):
            make_sample_data(digits)
        self.digits = digits
        self.calibration = {}

    def __call__(self, name, model, precision, size, ours=True, strips="auto", outputs=None, float_islands=None):
        """``ours``: a model of this package, converted as `mobilevitv2 convert` converts it (``strips``,
        ``outputs`` as its --strips, --outputs; int8 with its float islands unless ``float_islands`` is False);
        others as their users would (TFLiteConverter, builtin ops)."""
        float_islands = ours if float_islands is None else float_islands
        path = os.path.join(self.work, f"{name}_{size}_{precision}_{strips}_{outputs}_{float_islands}.tflite"
                            .replace(" ", "_"))
        graph = fixed_size_model(model, precision=precision, strips=strips, outputs=outputs)[0] if ours \
            else batch_one_model(model, (size, size))
        calibration = self.calibration_batches(size) if precision == "int8" else None
        content = tflite_content(graph, precision, calibration, float_islands=float_islands)
        with open(path, "wb") as file:
            file.write(content)
        print(f"converted {name} at {size} to {precision}", file=sys.stderr, flush=True)
        return path

    def calibration_batches(self, size):
        """The calibration batches at ``size`` (RGB in [0, 255]), made once: every int8 file, peers' too, is
        calibrated on the same images."""
        if size not in self.calibration:
            facts = PreprocessingConfig(input_size=(size, size), input_max=255.0)
            self.calibration[size] = list(calibration_images(self.digits, facts, (size, size),
                                                             steps=self.calibration_steps))
        return self.calibration[size]


def write_csv(rows, path):
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def read_csv(path):
    """The rows ``write_csv`` wrote (numbers as numbers), or none when there is no file."""
    if not os.path.isfile(path):
        return []

    def number(text):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, encoding="utf-8", newline="") as file:
        return [{key: number(value) for key, value in row.items()} for row in csv.DictReader(file)]


def machine():
    """The processor (with the vector instructions XNNPACK's int8 kernels depend on), cores, OS and Python of this
    machine, in a line."""
    processor, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            lines = info.read().splitlines()
        processor = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    except (OSError, StopIteration):
        pass
    vector = ("AVX-512 with VNNI" if "avx512_vnni" in flags else "AVX-512, no VNNI" if "avx512f" in flags
              else "AVX2, no AVX-512" if "avx2" in flags else "")
    processor += f" ({vector})" if vector else ""
    return (f"{processor}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def markdown_table(rows):
    """The lines of a Markdown table of dict rows (large integers with thousands separators)."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) and v > 9999 else str(v) for v in r.values()) + " |"
              for r in rows]
    return lines
