"""The main job, end to end on data made here: digits -> training -> TFLite float32 and int8 -> accuracy -> latency;
and the same for segmentation (digits on photos -> DeepLabv3 -> mIoU) and detection (SSDLite -> COCO AP).

Everything goes below one folder, and running it again continues where it
stopped: the digits are written once, an interrupted training run resumes, and
converted files newer than the trained model are kept.
"""

import os

STEPS = 5
QUICKSTART_DEFAULTS = {
    "classification": dict(out="mobilevitv2-quickstart", epochs=8, image_size=64),
    "segmentation": dict(out="mobilevitv2-quickstart-segmentation", epochs=10, image_size=128),
    "detection": dict(out="mobilevitv2-quickstart-detection", epochs=8, image_size=128),
}


def _step(number, text):
    print(f"\n[{number}/{STEPS}] {text}", flush=True)


def _is_fresh(path, source):
    return os.path.isfile(path) and os.path.getmtime(path) >= os.path.getmtime(source)


def plot_latency(rows, path):
    """A bar chart of median latency (p5 to p95) per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import save_figure

    names = [row["variant"] for row in rows]
    medians = [row["median_ms"] for row in rows]
    errors = [[m - row["p5_ms"] for m, row in zip(medians, rows)], [row["p95_ms"] - m for m, row in zip(medians, rows)]]
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar(names, medians, yerr=errors, capsize=4, color=["tab:blue", "tab:green"][:len(rows)])
    axis.set_ylabel("ms per image (median, p5-p95)")
    axis.set_title("TFLite XNNPACK, 1 thread, batch 1")
    save_figure(figure, path)


def summary_table(rows):
    lines = ["| variant | file | MB | top-1 | agreement with Keras | max probability diff | median ms | p95 ms |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['variant']} | {os.path.basename(row['path'])} | {row['megabytes']:.2f} "
                     f"| {row['top1']:.2%} | {row['top1_agreement']:.2%} | {row['max_probability_difference']:.2g} "
                     f"| {row['median_ms']:.2f} | {row['p95_ms']:.2f} |")
    return "\n".join(lines)


def quickstart(out="mobilevitv2-quickstart", epochs=8, image_size=64):
    """Runs the whole pipeline below ``out``; returns the rows of the summary table.

    Writes ``out/digits`` (scikit-learn's digits as an image folder), ``out/run``
    (the training run: model.keras, curves, checkpoints), ``model_fp32.tflite``
    and ``model_int8.tflite`` (full integer, uint8 in and out), ``latency.png``
    and ``report.md`` (the table, the training curves and the latency plot).
    """
    from mobilevitv2_tflite.runtime import evaluate_models

    from .data import make_sample_data, scan_image_folder, split_folder
    from .files import write_text
    from .training import TrainConfig, train
    from .training.callbacks import STATE_FILE

    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    data_dir, run_dir = os.path.join(out, "digits"), os.path.join(out, "run")
    if not os.path.isfile(os.path.join(data_dir, "9", "1796.png")):
        count = make_sample_data(data_dir, overwrite=True)
        _step(1, f"wrote {count} handwritten digits (scikit-learn) to {data_dir}")
    else:
        _step(1, f"the digits are in {data_dir}")

    resume = os.path.isfile(os.path.join(run_dir, "checkpoints", STATE_FILE))
    _step(2, f"{'resuming' if resume else 'training'} mobilevitv2_050 at {size[0]}x{size[1]} in {run_dir}")
    trained = train(data_dir, run_dir, resume=resume, overwrite=not resume, verbose=0, model="mobilevitv2_050",
                    image_size=size, epochs=epochs, batch_size=32, val_split=0.2)  # the small-data recipe
    validation = float(trained.history[-1]["val_accuracy"])
    best = max(float(r.get("val_accuracy", 0)) for r in trained.history)
    print(f"validation top-1 {validation:.2%} (best {best:.2%}); "
          f"curves in {run_dir}/training_curves.png", flush=True)
    model_path = os.path.join(run_dir, "model.keras")

    _step(3, "converting to TFLite: float32, and full int8 calibrated on the digits")
    variants = _convert_fresh(model_path, out, data_dir, io_type="uint8")

    # the run's own validation images (its 20% split), which it never trained on
    _, held_out = split_folder(scan_image_folder(data_dir, progress=False), 0.2, TrainConfig().seed)
    _step(4, f"evaluating both on the {len(held_out)} held-out digits against the Keras model")
    rows = []
    paths = list(variants.values())
    for variant, path, scores in zip(variants, paths, evaluate_models(paths, held_out, reference=model_path)):
        rows.append(dict(variant=variant, path=path, megabytes=os.path.getsize(path) / 1e6, **{
            k: scores[k] for k in ("top1", "top5", "top1_agreement", "max_probability_difference")}))

    speedup = _time_files(rows, out, rounds=20, runs=10)[-1]

    table = summary_table(rows)
    report = "\n".join([
        "# MobileViTv2-0.5 on the digits: from training to TFLite", "",
        f"`mobilevitv2_050` trained {epochs} epochs at {size[0]}x{size[1]} on scikit-learn's digits "
        f"(validation top-1 {validation:.2%}), converted to float32 and full int8, "
        f"evaluated on the {len(held_out)} held-out digits and timed with LiteRT (XNNPACK, 1 thread).", "",
        table, "", speedup, "",
        "![training curves](run/training_curves.png)", "", "![latency](latency.png)", ""])
    write_text(os.path.join(out, "report.md"), report)
    print("\n" + table, flush=True)
    print(f"\n{speedup} Report: {out}/report.md", flush=True)
    return rows


def plot_overlays(segmenter, data, path, count=4):
    """For ``count`` validation images: the image, its ground truth and the prediction, in the palette's colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mobilevitv2_tflite.runtime import overlay

    from .data import load_segmentation_pair
    from .data.segmentation import IGNORE_LABEL, voc_palette
    from .evaluation import predict_mask
    from .files import save_figure

    palette = voc_palette()
    picks = np.unique(np.linspace(0, len(data) - 1, count).round().astype(int))
    figure, axes = plt.subplots(len(picks), 3, figsize=(9, 3 * len(picks)), squeeze=False)
    for row, index in zip(axes, picks):
        image, truth = load_segmentation_pair(data, index)
        shown = np.where(truth == IGNORE_LABEL, 0, truth)
        for axis, picture, title in zip(row, (image, overlay(image, shown, palette),
                                              overlay(image, predict_mask(segmenter, image), palette)),
                                        ("image", "ground truth", "prediction")):
            axis.imshow(picture)
            axis.set_title(title)
            axis.axis("off")
    save_figure(figure, path)


def segmentation_quickstart(out="mobilevitv2-quickstart-segmentation", epochs=10, image_size=128):
    """Segmentation end to end below ``out``: digits on photos -> DeepLabv3 on MobileViTv2-0.5 -> float32 and
    int8 TFLite -> mIoU of each on the validation images -> latency -> ``report.md`` with curves and overlays.

    Running it again continues where it stopped, as ``quickstart`` does.
    """
    from mobilevitv2_tflite.runtime import TFLiteSegmenter

    from .data import make_segmentation_sample_data, scan_segmentation_data
    from .evaluation import KerasSegmenter, evaluate_segmentation
    from .files import write_text

    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    data_dir, run_dir = os.path.join(out, "data"), os.path.join(out, "run")
    if not os.path.isfile(os.path.join(data_dir, "classes.txt")):
        counts = make_segmentation_sample_data(data_dir, overwrite=True)
        _step(1, f"wrote {counts['train']} training and {counts['val']} validation images with masks "
                 f"(scikit-learn's digits on scikit-image's photos) to {data_dir}")
    else:
        _step(1, f"the images and masks are in {data_dir}")

    model_path, tflite_paths = _train_and_convert(
        out, data_dir, run_dir, "val_miou", "mIoU", ".2%", model="deeplabv3_mobilevitv2_050",
        image_size=size, epochs=epochs, batch_size=8)  # the small-data recipe

    _step(4, "mIoU on the validation images, cvnets' protocol (masks at each image's own size)")
    val = scan_segmentation_data(data_dir, "val", progress=False)
    keras_segmenter = KerasSegmenter.load(model_path)
    background_only = evaluate_segmentation(_BackgroundOnly(), val, progress=False)["miou"]
    rows = []
    for variant, segmenter, path in [("Keras", keras_segmenter, model_path)] + [
            (f"{variant} TFLite", TFLiteSegmenter(path), path) for variant, path in tflite_paths.items()]:
        scores = evaluate_segmentation(segmenter, val, progress=False)
        rows.append(dict(variant=variant, path=path, megabytes=os.path.getsize(path) / 1e6, **scores))
        print(f"{variant}: mIoU {scores['miou']:.2%}, pixel accuracy {scores['pixel_accuracy']:.2%}", flush=True)
    print(f"(a model that says background everywhere: mIoU {background_only:.2%})", flush=True)

    latency = _time_files(rows, out)
    plot_overlays(keras_segmenter, val, os.path.join(out, "overlays.png"))

    table = "\n".join(
        ["| model | file | MB | mIoU | pixel accuracy | " + " | ".join(f"IoU {n}" for n in val.class_names)
         + " | median ms |",
         "| --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in val.class_names) + " | ---: |"]
        + [f"| {r['variant']} | {os.path.basename(r['path'])} | {r['megabytes']:.2f} | {r['miou']:.2%} | "
           f"{r['pixel_accuracy']:.2%} | " + " | ".join("-" if v is None else f"{v:.2%}"
                                                        for v in r["per_class_iou"].values())
           + f" | {_latency_cell(r)} |" for r in rows])
    change = (rows[2]["miou"] - rows[1]["miou"]) * 100
    report = "\n".join([
        "# DeepLabv3 on MobileViTv2-0.5: segmentation from training to TFLite", "",
        f"`deeplabv3_mobilevitv2_050` trained from scratch {epochs} epochs on "
        f"{size[0]}x{size[1]} crops of scikit-learn's digits pasted on scikit-image's photos "
        f"({len(val)} validation images; classes {', '.join(val.class_names)}), evaluated with cvnets' protocol, "
        f"converted to float32 and full int8 TFLite and timed with LiteRT (XNNPACK, 1 thread, at "
        f"{size[0]}x{size[1]}).", "", table, "",
        f"int8 against float32: mIoU {change:+.2f} points. "
        f"A model that says background everywhere scores mIoU {background_only:.2%}.", "", *latency, "",
        "![training curves](run/training_curves.png)", "", "![latency](latency.png)", "",
        "![validation images](overlays.png)", ""])
    write_text(os.path.join(out, "report.md"), report)
    print("\n" + table, flush=True)
    print(f"\n{latency[-1]} int8 against float32: mIoU {change:+.2f} points. Report: {out}/report.md", flush=True)
    return rows


class _BackgroundOnly:
    """The baseline a segmentation model must beat: class 0 everywhere."""

    def logits(self, image):
        import numpy as np

        logits = np.zeros((*image.shape[:2], 2), np.float32)
        logits[..., 0] = 1.0
        return logits


def plot_detections(detector, source, path, count=4, score_threshold=0.3):
    """``count`` validation images with their ground-truth boxes (white) and the detections (coloured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import tensorflow as tf

    from mobilevitv2_tflite.runtime import draw_detections

    from .data.pipeline import decode_file
    from .evaluation import detect
    from .files import save_figure

    names = list(source.class_names[1:])
    picks = np.unique(np.linspace(0, len(source) - 1, count).round().astype(int))
    figure, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 4), squeeze=False)
    for axis, index in zip(axes[0], picks):
        image = decode_file(tf.constant(source.paths[index]), tf.constant(source.native[index])).numpy()
        height, width = image.shape[:2]
        axis.imshow(draw_detections(image, detect(detector, image, score_threshold=score_threshold), names))
        for (x1, y1, x2, y2), ignored in zip(np.asarray(source.boxes[index]), np.asarray(source.ignored[index])):
            if not ignored:
                axis.add_patch(plt.Rectangle((x1 * width, y1 * height), (x2 - x1) * width, (y2 - y1) * height,
                                             fill=False, edgecolor="white", linestyle="--", linewidth=1))
        axis.set_title(f"{os.path.basename(source.paths[index])}")
        axis.axis("off")
    save_figure(figure, path)


def _train_and_convert(out, data_dir, run_dir, metric, label, spec, **settings):
    """Steps 2 and 3 of the dense quickstarts: train (or resume, or find done) the run, print its validation
    ``metric``, convert ``model.keras`` to ``out/model_fp32.tflite`` and ``out/model_int8.tflite`` (full
    integer, float input and output, calibrated on the training images), each unless it is newer than the
    model. Returns the model's path and ``{"float32": path, "int8": path}``."""
    from .training import train
    from .training.callbacks import STATE_FILE

    size = settings["image_size"]
    resume = os.path.isfile(os.path.join(run_dir, "checkpoints", STATE_FILE))
    _step(2, f"{'resuming' if resume else 'training'} {settings['model']} at {size[0]}x{size[1]} in {run_dir}")
    trained = train(data_dir, run_dir, resume=resume, overwrite=not resume, verbose=0, **settings)
    best = max(float(r.get(metric, 0)) for r in trained.history)
    print(f"validation {label} {float(trained.history[-1][metric]):{spec}} (best {best:{spec}}); "
          f"curves in {run_dir}/training_curves.png", flush=True)
    model_path = os.path.join(run_dir, "model.keras")

    _step(3, "converting to TFLite: float32, and full int8 calibrated on the training images")
    return model_path, _convert_fresh(model_path, out, os.path.join(data_dir, "train", "images"))


def _convert_fresh(model_path, out, calibration_data, io_type="float32"):
    """``model_path`` converted to ``out/model_fp32.tflite`` and to ``out/model_int8.tflite`` (full integer,
    calibrated on 200 images of ``calibration_data``, ``io_type`` input and output), each unless it is newer
    than the model: ``{"float32": path, "int8": path}``."""
    from mobilevitv2_tflite.convert import convert

    files = {"float32": (os.path.join(out, "model_fp32.tflite"), "fp32"),
             "int8": (os.path.join(out, "model_int8.tflite"), "int8")}
    for path, precision in files.values():
        if _is_fresh(path, model_path):
            print(f"{path}: up to date", flush=True)
        else:
            print(convert(model_path, path, precision=precision, calibration_data=calibration_data,
                          calibration_steps=200, io_type=io_type if precision == "int8" else "float32",
                          overwrite=True).summary(), flush=True)
    return {variant: path for variant, (path, _) in files.items()}


def _time_files(rows, out, rounds=10, runs=5):
    """Step 5 of the quickstarts: the rows' TFLite files (float32, then int8) timed in turns (LiteRT, XNNPACK,
    1 thread), their figures added to the rows, ``out/latency.png`` drawn; returns the latency lines of the
    report, the int8 speed-up last."""
    from mobilevitv2_tflite.benchmark import benchmark_interleaved

    _step(5, "benchmarking both on this CPU: LiteRT, XNNPACK, 1 thread, taking turns")
    files = [row for row in rows if row["path"].endswith(".tflite")]
    timed = benchmark_interleaved({row["variant"]: (row["path"], 1) for row in files}, rounds=rounds, runs=runs)
    for row in files:
        result = timed[row["variant"]]
        row.update(median_ms=result.median_ms, p5_ms=result.p5_ms, p95_ms=result.p95_ms)
    plot_latency(files, os.path.join(out, "latency.png"))
    lines = [f"{row['variant']}: median {row['median_ms']:.2f} ms (p95 {row['p95_ms']:.2f} ms)" for row in files]
    return lines + [int8_speed_line(files[0]["median_ms"], files[1]["median_ms"])]


def int8_speed_line(float32_ms, int8_ms):
    """How int8 compares with float32 in time, in words that stay true when int8 is the slower one (it can be,
    on a CPU without int8 dot products)."""
    if int8_ms <= float32_ms:
        return f"int8 runs {float32_ms / int8_ms:.2f}x as fast as float32."
    return f"int8 takes {int8_ms / float32_ms:.2f}x as long as float32 on this CPU."


def _latency_cell(row):
    return f"{row['median_ms']:.2f}" if "median_ms" in row else "-"


def detection_quickstart(out="mobilevitv2-quickstart-detection", epochs=8, image_size=128):
    """Detection end to end below ``out``: digits on photos (COCO JSON) -> SSDLite on MobileViTv2-0.5 ->
    float32 and int8 TFLite -> COCO AP of each on the validation images -> latency -> ``report.md`` with
    curves and detections. Running it again continues where it stopped."""
    from mobilevitv2_tflite.runtime import TFLiteDetector

    from .data.sample_detection import make_detection_sample_data
    from .evaluation import KerasDetector, evaluate_detection
    from .files import write_text
    from .training.tasks import load_detection_data

    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    data_dir, run_dir = os.path.join(out, "data"), os.path.join(out, "run")
    if not os.path.isfile(os.path.join(data_dir, "val", "annotations.json")):
        counts = make_detection_sample_data(data_dir, overwrite=True)
        _step(1, f"wrote {counts['train']} training and {counts['val']} validation images with boxes "
                 f"(scikit-learn's digits on scikit-image's photos, COCO JSON) to {data_dir}")
    else:
        _step(1, f"the images and boxes are in {data_dir}")

    model_path, tflite_paths = _train_and_convert(
        out, data_dir, run_dir, "val_map", "AP", ".3f", model="ssdlite_mobilevitv2_050",
        image_size=size, epochs=epochs, batch_size=16)  # the small-data recipe

    _step(4, "COCO AP on the validation images, cvnets' protocol (pycocotools)")
    val = load_detection_data(data_dir, split="val", progress=False)
    keras_detector = KerasDetector.load(model_path)
    rows = []
    for variant, detector, path in [("Keras", keras_detector, model_path)] + [
            (f"{variant} TFLite", TFLiteDetector(path), path) for variant, path in tflite_paths.items()]:
        scores = evaluate_detection(detector, val, progress=False)
        rows.append(dict(variant=variant, path=path, megabytes=os.path.getsize(path) / 1e6, **scores))
        print(f"{variant}: AP {scores['AP']:.3f}, AP50 {scores['AP50']:.3f}", flush=True)

    latency = _time_files(rows, out)
    plot_detections(keras_detector, val, os.path.join(out, "detections.png"))

    table = "\n".join(
        ["| model | file | MB | AP | AP50 | AP75 | AP small | AP medium | AP large | median ms |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        + [f"| {r['variant']} | {os.path.basename(r['path'])} | {r['megabytes']:.2f} | " + " | ".join(
            "-" if r[k] < 0 else f"{r[k]:.3f}" for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"))
           + f" | {_latency_cell(r)} |" for r in rows])
    change = (rows[2]["AP"] - rows[1]["AP"]) * 100
    report = "\n".join([
        "# SSDLite on MobileViTv2-0.5: detection from training to TFLite", "",
        f"`ssdlite_mobilevitv2_050` trained from scratch {epochs} epochs at {size[0]}x{size[1]} on scikit-learn's "
        f"digits pasted on scikit-image's photos ({len(val)} validation images; classes "
        f"{', '.join(val.class_names[1:])}), evaluated with pycocotools as cvnets does, converted to float32 and "
        f"full int8 TFLite with the post-processing inside (TFLite_Detection_PostProcess) and timed with LiteRT "
        f"(XNNPACK, 1 thread, at {size[0]}x{size[1]}).",
        "", table, "", f"int8 against float32: AP {change:+.2f} points.", "", *latency, "",
        "![training curves](run/training_curves.png)", "", "![latency](latency.png)", "",
        "![validation images: ground truth dashed, detections with scores](detections.png)", ""])
    write_text(os.path.join(out, "report.md"), report)
    print("\n" + table, flush=True)
    print(f"\n{latency[-1]} int8 against float32: AP {change:+.2f} points. Report: {out}/report.md", flush=True)
    return rows
