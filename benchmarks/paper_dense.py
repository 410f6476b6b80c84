"""The paper's dense-task comparisons on this machine: DeepLabv3 at 512x512 and SSDLite at 320x320.

Every MobileViTv2 width, MobileViT v1 XXS / XS / S and keras.applications'
MobileNetV2 under the same heads: parameters, GMACs, float32 and full-int8
latency at 1 and 2 threads, with LiteRT and XNNPACK, batch 1, random weights,
the models of a task taking turns in every round (``benchmark_interleaved``).

- DeepLabv3: the registry's PASCAL VOC configuration (output stride 16, 21
  classes; ASPP 512 for MobileViTv2, cvnets v0.1's 256 for v1). MobileNetV2 gets
  the MobileViTv2 head (ASPP 512, rates 6 / 12 / 18) on its last stage, dilated
  to output stride 16 as cvnets dilates its MobileNetV2 (the stride-2 depthwise
  convolution of block 13 at stride 1, blocks 14 to 16 at dilation 2). The files
  output the head's logits, as `mobilevitv2 convert` writes them by default.
- SSDLite: the COCO configuration (81 classes with the background). MobileNetV2
  gives P4 = the output of block 12 (96 channels, stride 16) and P5 = block 16's
  projection (320 channels, stride 32), to the same extra layers and heads. The
  files output the raw box regressions and class logits: the post-processing op
  costs the same for every backbone (benchmarks/results/detection_postprocess.md).

int8 files are calibrated on a few of the kit's digits (their latency does not
depend on what they were calibrated on). Writes
benchmarks/results/paper_dense.{csv,md,png}.

    python benchmarks/paper_dense.py [--tasks segmentation detection] [--rounds 3]
"""

import argparse
import os
import sys
import tempfile

import keras

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import save_figure, write_text
from keras_mobilevitv2.heads import deeplabv3_head
from keras_mobilevitv2.heads.ssdlite import ssdlite_feature_maps, ssdlite_head
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import xnnpack_delegation

from common import Converter, machine, markdown_table, read_csv, write_csv
from paper_claims import size_and_cost

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
# task -> (head prefix of the registry, input size, what the files output)
TASKS = {"segmentation": ("deeplabv3", 512, "head-logits"), "detection": ("ssdlite", 320, "raw")}
VOC_CLASSES, COCO_CLASSES = 21, 80


def mobilenetv2_features(size, output_stride=32):
    """keras.applications' MobileNetV2 (RGB in [0, 255], as every model here takes it) as a backbone:
    ``(image input, {"P4": stride 16, "P5": stride output_stride})``; output stride 16 by dilation."""
    image = keras.Input((size, size, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(image)
    base = keras.applications.MobileNetV2(input_tensor=scaled, include_top=False, weights=None)
    if output_stride == 16:
        config = base.get_config()
        for layer in config["layers"]:
            settings = layer["config"]
            if settings["name"] == "block_13_pad":  # pads for a stride-2 'valid' 3x3; at stride 1, both sides
                settings["padding"] = ((1, 1), (1, 1))
            elif settings["name"] == "block_13_depthwise":
                settings["strides"] = (1, 1)
            elif settings["name"] in ("block_14_depthwise", "block_15_depthwise", "block_16_depthwise"):
                settings["dilation_rate"] = (2, 2)
        base = keras.Model.from_config(config)
    features = {"P4": base.get_layer("block_12_add").output, "P5": base.get_layer("block_16_project_BN").output}
    return base.input, features


def mobilenetv2_model(task, size):
    if task == "segmentation":
        image, features = mobilenetv2_features(size, output_stride=16)
        return keras.Model(image, deeplabv3_head(features, VOC_CLASSES), name="deeplabv3_mobilenetv2")
    image, features = mobilenetv2_features(size)
    boxes, logits = ssdlite_head(ssdlite_feature_maps(features), COCO_CLASSES + 1)
    return keras.Model(image, {"box_regressions": boxes, "class_logits": logits}, name="ssdlite_mobilenetv2")


def measure(task, convert, rounds):
    head, size, outputs = TASKS[task]
    names = [f"{head}_{name}" for name in kmv.list_models()]
    rows, files = [], {}
    for name in [*names, f"{head}_mobilenetv2"]:
        ours = name in names
        model = (kmv.create_model(name, input_shape=(size, size, 3)) if ours else mobilenetv2_model(task, size))
        params, gmacs = size_and_cost(model)
        rows.append({"task": task, "model": name, "image_size": size, "params": params, "gmacs": round(gmacs, 3)})
        for precision in ("fp32", "int8"):
            files[(name, precision)] = convert(name, model, precision, size, ours=ours, outputs=outputs)
        rows[-1]["int8_partitions"] = xnnpack_delegation(files[(name, "int8")]).partitions
        keras.backend.clear_session()
    for threads in (1, 2):
        timed = benchmark_interleaved({key: (path, threads) for key, path in files.items()}, rounds=rounds, runs=1,
                                      warmup=2)
        for row in rows:
            for precision in ("fp32", "int8"):
                row[f"{precision}_ms_{threads}t"] = round(timed[(row["model"], precision)].median_ms, 2)
    return rows


def plot(rows, path):
    import matplotlib.pyplot as plt

    tasks = [task for task in TASKS if any(r["task"] == task for r in rows)]
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.8 * len(tasks), 4.4), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        head, size, _ = TASKS[task]
        for family, colour in (("mobilevitv2", "tab:blue"), ("mobilevit_", "tab:orange"), ("mobilenet", "tab:gray")):
            chosen = [r for r in rows if r["task"] == task and r["model"].split("_", 1)[1].startswith(family)]
            for precision, marker, fill in (("fp32", "o", colour), ("int8", "s", "none")):
                axis.plot([r["gmacs"] for r in chosen], [r[f"{precision}_ms_1t"] for r in chosen], marker,
                          color=colour, markerfacecolor=fill, linestyle="-" if family == "mobilevitv2" else "",
                          label=f"{family.rstrip('_')} {precision}")
            for r in chosen:
                axis.annotate(r["model"].split("_", 1)[1].replace("mobilevit", "mvit").replace("mobilenet", "mnet"),
                              (r["gmacs"], r["fp32_ms_1t"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel(f"GMACs at {size}x{size}")
        axis.set_ylabel("median ms per image, 1 thread (TFLite XNNPACK)")
        axis.set_title(f"{head}, {size}x{size}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration-steps", type=int, default=8)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        convert = Converter(work, calibration_steps=args.calibration_steps)
        for task in args.tasks:
            rows += measure(task, convert, args.rounds)
    # A task measured alone replaces its own rows only: the other task's stay, from the run that measured them.
    rows = [row for row in read_csv(os.path.join(args.out, "paper_dense.csv")) if row["task"] not in args.tasks] + rows
    rows.sort(key=lambda row: list(TASKS).index(row["task"]))
    write_csv(rows, os.path.join(args.out, "paper_dense.csv"))
    plot(rows, os.path.join(args.out, "paper_dense.png"))
    lines = ["## DeepLabv3 at 512x512 and SSDLite at 320x320: MobileViTv2, MobileViT and MobileNetV2 backbones", "",
             f"Measured on {machine()}; TFLite (ai-edge-litert) with XNNPACK, batch 1, random weights, median of "
             f"{args.rounds} rounds with the models of each task taking turns. Command: "
             "`python benchmarks/paper_dense.py` (`--tasks` to measure one). DeepLabv3 files output the head's "
             "logits (stride 16), SSDLite files the raw box regressions and class logits.", ""]
    for task in TASKS:
        if any(row["task"] == task for row in rows):
            lines += [*markdown_table([{k: v for k, v in r.items() if k != "task"} for r in rows if r["task"] == task]),
                      ""]
    lines.append("![latency against GMACs](paper_dense.png)")
    write_text(os.path.join(args.out, "paper_dense.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
