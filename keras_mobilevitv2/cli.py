"""The ``mobilevitv2`` command: a thin layer over the Python API, one function per subcommand."""

import argparse
import json
import os
import sys

from mobilevitv2_tflite.convert import IO_TYPES, OUTPUTS, PRECISIONS

from .files import check_output_path
from .models import TASKS

ALL_OUTPUTS = tuple(dict.fromkeys(output for outputs in OUTPUTS.values() for output in outputs))


class ImageSizeAction(argparse.Action):
    """``--image-size S`` (a square) or ``--image-size H W``, stored as (height, width)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if not 1 <= len(values) <= 2:
            parser.error(f"{option_string} takes one number (a square) or two (height width), got {len(values)}")
        if any(v < 1 for v in values):
            parser.error(f"{option_string} must be positive, got {' '.join(map(str, values))}")
        setattr(namespace, self.dest, (values[0], values[-1]))


def _add_image_size(parser, default=None, help="image size: S (square) or H W"):
    parser.add_argument("--image-size", type=int, nargs="+", action=ImageSizeAction, metavar="SIZE",
                        default=default, help=help)


def _shapes(shape):
    if isinstance(shape, dict):
        return ", ".join(f"{name} {tuple(value)}" for name, value in shape.items())
    return str(tuple(shape))


def _model_table(rows):
    width = max([17] + [len(row["model"]) for row in rows])
    header = f"{'model':<{width}} {'params':>12} {'GMACs':>7} {'attn GMACs':>10} {'top-1 (paper)':>13}  output"
    lines = [header, "-" * len(header)]
    for row in rows:
        top1 = row.get("reference_top1")
        lines.append(
            f"{row['model']:<{width}} {row['params']:>12,} {row['gmacs']:>7.3f} {row['attention_gmacs']:>10.3f} "
            f"{'' if top1 is None else f'{top1:.2f}':>13}  {_shapes(row['output_shape'])}")
    return "\n".join(lines)


def _describe_models(names, image_size=None):
    """The ``info`` rows of registry models, each at ``image_size`` or its task's official size."""
    from .architectures import get_architecture
    from .complexity import describe
    from .models import get_entry
    from .training.recipe import TASK_RECIPES

    rows = []
    for name in names:
        entry = get_entry(name)
        size = image_size or TASK_RECIPES[entry.task].image_size
        row = describe(name, size)
        top1 = get_architecture(name).reference_top1 if entry.task == "classification" else None
        row["reference_top1"] = top1 if tuple(row["image_size"]) == (256, 256) else None
        rows.append(row)
    return rows


def cmd_info(args):
    from .models import list_models

    rows = _describe_models(args.models or list_models(args.task), args.image_size)
    print(json.dumps(rows, indent=2) if args.json else _model_table(rows))


def cmd_quickstart(args):
    """The main job: the zoo's table, then a task end to end on data made here (see ``quickstart``)."""
    from .models import list_models
    from .quickstart import QUICKSTART_DEFAULTS, detection_quickstart, quickstart, segmentation_quickstart

    defaults = QUICKSTART_DEFAULTS[args.task]
    settings = dict(out=args.out or defaults["out"], epochs=args.epochs or defaults["epochs"],
                    image_size=args.image_size or defaults["image_size"])
    if os.path.exists(settings["out"]) and not os.path.isdir(settings["out"]):
        raise NotADirectoryError(f"{settings['out']}: exists and is not a folder (--out is where data and run go)")
    if settings["epochs"] < 1:
        raise ValueError(f"--epochs must be at least 1, got {settings['epochs']}")
    if args.task == "classification":
        names, size = list_models(args.task), (256, 256)
        print(f"the zoo: {len(names)} models at 256x256", flush=True)
    elif args.task == "segmentation":  # all 17 at 512x512 take minutes: one of each head (`info --task ...`)
        names, size = ["deeplabv3_mobilevitv2_050", "pspnet_mobilevitv2_050", "deeplabv3_mobilevit_xxs"], (512, 512)
        print(f"three of the {len(list_models(args.task))} segmentation models at 512x512", flush=True)
    else:
        names, size = ["ssdlite_mobilevitv2_050", "ssdlite_mobilevitv2_100", "ssdlite_mobilevit_xxs"], (320, 320)
        print(f"three of the {len(list_models(args.task))} detectors at 320x320", flush=True)
    print(_model_table(_describe_models(names, size)), flush=True)
    {"classification": quickstart, "segmentation": segmentation_quickstart,
     "detection": detection_quickstart}[args.task](**settings)


def cmd_import_weights(args):
    from .weights import import_checkpoint

    model = import_checkpoint(
        args.checkpoint, args.model, args.out, image_size=args.image_size, classes=args.classes,
        skip_head=args.skip_head, labels=args.labels, overwrite=args.overwrite, output_stride=args.output_stride,
        atrous_rates=args.atrous_rates)
    outputs = model.output if isinstance(model.output, dict) else {"logits": model.output}
    shapes = ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in outputs.items())
    print(f"wrote {args.out}: {model.name}, input {model.input_shape}, outputs {shapes}")


def cmd_make_sample_data(args):
    from .data import make_sample_data, make_segmentation_sample_data

    if args.task == "detection":
        from .data.sample_detection import make_detection_sample_data

        counts = make_detection_sample_data(args.out, overwrite=args.overwrite)
        print(f"wrote {counts['train']} training and {counts['val']} validation images with boxes (digits on "
              f"photos, COCO JSON: train/annotations.json, val/annotations.json) to {args.out}")
        return
    if args.task == "segmentation":
        counts = make_segmentation_sample_data(args.out, overwrite=args.overwrite)
        print(f"wrote {counts['train']} training and {counts['val']} validation images with masks "
              f"({counts['classes']} classes: digits on photos) to {args.out}")
        return
    count = make_sample_data(args.out, overwrite=args.overwrite)
    print(f"wrote {count} digit images (10 classes) to {args.out}")


def cmd_make_tfrecords(args):
    from .data import make_tfrecords

    index = make_tfrecords(args.data, args.out, shards=args.shards, overwrite=args.overwrite)
    counts = ", ".join(f"{split}: {entry['count']}" for split, entry in index["splits"].items())
    print(f"wrote {args.out}: {counts} images, {len(index['class_names'])} classes; "
          f"{len(index['skipped'])} unreadable file(s) skipped")


# train flag -> (TrainConfig field, or AugmentConfig field in augment_overrides)
_AUGMENT_FLAGS = {
    "random_resized_crop": "random_resized_crop", "crop_scale": "crop_scale", "flip": "horizontal_flip",
    "randaugment": "randaugment", "randaugment_magnitude": "randaugment_magnitude",
    "random_erasing": "random_erasing", "mixup": "mixup_alpha", "cutmix": "cutmix_alpha",
}
_TRAIN_FIELDS = (
    "model", "task", "image_size", "epochs", "batch_size", "recipe", "learning_rate", "min_learning_rate",
    "weight_decay", "warmup_steps", "global_clipnorm", "label_smoothing", "ema_momentum", "augmentation", "val_split",
    "seed", "deterministic", "mixed_precision", "strategy", "init_from", "skip_head", "freeze_backbone", "multi_scale",
    "aux_loss_weight", "output_stride",
)


def train_settings(args):
    """The TrainConfig fields a ``train`` command line sets (flags left out keep the recipe's values)."""
    settings = {f: getattr(args, f) for f in _TRAIN_FIELDS if getattr(args, f, None) is not None}
    overrides = {field: getattr(args, flag) for flag, field in _AUGMENT_FLAGS.items()
                 if getattr(args, flag, None) is not None}
    if "crop_scale" in overrides:
        overrides["crop_scale"] = tuple(overrides["crop_scale"])
    if overrides:
        settings["augment_overrides"] = overrides
    return settings


def cmd_train(args):
    from .training import train

    result = train(args.data, args.out, val_data=args.val_data, resume=args.resume, overwrite=args.overwrite,
                   verbose=0 if args.quiet else 1, annotations=args.annotations,
                   val_annotations=args.val_annotations, **train_settings(args))
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {float(last[k]):.4f}" for k in ("accuracy", "val_accuracy", "miou", "val_miou",
                                                               "val_map", "val_ap50") if k in last)
    print(f"wrote {result.run_dir}/model.keras ({summary})")


def _strips(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number, got {text!r}") from None


def cmd_convert(args):
    from mobilevitv2_tflite.convert import convert

    from mobilevitv2_tflite.detection_postprocess import DetectionPostprocessing

    chosen = {key: value for key, value in (("score_threshold", args.score_threshold),
                                            ("iou_threshold", args.iou_threshold),
                                            ("max_detections", args.max_detections)) if value is not None}
    if args.fast_nms:
        chosen["regular_nms"] = False
    postprocessing = DetectionPostprocessing(**chosen) if chosen else None
    report = convert(args.model, args.out, precision=args.precision, calibration_data=args.calibration_data,
                     calibration_steps=args.calibration_steps, io_type=args.io_type, image_size=args.image_size,
                     strips=args.strips, outputs=args.outputs, postprocessing=postprocessing,
                     float_islands=not args.all_int8, overwrite=args.overwrite)
    print(report.summary())


def cmd_qat(args):
    from mobilevitv2_tflite.qat import quantization_aware_training

    path, report, history = quantization_aware_training(
        args.model, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, io_type=args.io_type, freeze_batch_norm=not args.train_batch_norm,
        calibration_steps=args.calibration_steps, overwrite=args.overwrite, annotations=args.annotations)
    last = {k: v[-1] for k, v in history.items()}
    print("last epoch: " + "  ".join(f"{k} {v:.4f}" for k, v in last.items()))
    print(report.summary())


def _scores_line(result):
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                     if not isinstance(v, (dict, list)))


def cmd_eval(args):
    from mobilevitv2_tflite.runtime import evaluate, evaluate_segmentation_model, model_task

    from .files import write_json

    if args.json:
        check_output_path(args.json, args.overwrite, inputs=(args.model,))
    task = model_task(args.model)
    if task == "segmentation":
        result = evaluate_segmentation_model(args.model, args.data, split=args.split, limit=args.limit)
        print(_scores_line(result))
        print("IoU per class: " + ", ".join("-" if v is None else f"{name} {v:.4f}"
                                            for name, v in result["per_class_iou"].items()))
    elif task == "detection":
        from mobilevitv2_tflite.runtime import evaluate_detection_model

        result = evaluate_detection_model(args.model, args.data, args.annotations, split=args.split, limit=args.limit)
        print(_scores_line(result))
    else:
        result = evaluate(args.model, args.data, reference=args.reference, limit=args.limit)
        print(_scores_line(result))
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


def cmd_predict(args):
    from mobilevitv2_tflite.runtime import model_task, predict, predict_segmentation

    task = model_task(args.model)
    if task in ("segmentation", "detection") and not args.out_dir:
        raise ValueError(f"a {task} model writes its results as files: pass --out-dir DIR")
    if task == "detection":
        from mobilevitv2_tflite.runtime import predict_detections

        for image, _, picture, detections in predict_detections(
                args.model, args.images, args.out_dir, score_threshold=args.score_threshold, overwrite=args.overwrite):
            found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections[:8])
            print(f"{image}: {len(detections)} detection(s) ({found}); {picture}")
        return
    if task == "segmentation":
        for image, mask, overlay, shares in predict_segmentation(args.model, args.images, args.out_dir,
                                                                 overwrite=args.overwrite):
            classes = ", ".join(f"{name} {share:.1%}" for name, share in sorted(shares.items(), key=lambda s: -s[1]))
            print(f"{image}: {mask}, {overlay} ({classes})")
        return
    for image, top in predict(args.model, args.images, top=args.top):
        print(image)
        for name, probability in top:
            print(f"  {probability:7.2%}  {name}")


def cmd_benchmark(args):
    from mobilevitv2_tflite.benchmark import benchmark_host_models, markdown_table, write_results

    outputs = dict(json_path=args.json, csv_path=args.csv, markdown_path=args.markdown)
    for path in filter(None, outputs.values()):
        check_output_path(path, args.overwrite, inputs=args.models)
    for path in args.models:  # before any run starts
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such model file")
    if args.android:
        from mobilevitv2_tflite.android import AndroidBenchmarkError, benchmark_android

        if not args.benchmark_binary:
            raise ValueError("--android needs --benchmark-binary: the benchmark_model built for the device")
        try:
            results = benchmark_android(
                args.models, args.benchmark_binary, serial=args.serial, threads=args.threads,
                delegates=args.delegates, runs=args.runs, warmup=args.warmup, adb=args.adb,
                on_result=lambda so_far: write_results(so_far, **outputs),
                progress=lambda line: print(line, file=sys.stderr, flush=True))
        except AndroidBenchmarkError as error:
            kept = [path for path in outputs.values() if path and os.path.exists(path)]
            raise ValueError(f"{error}" + (f" (results so far kept in {', '.join(kept)})" if kept else ""))
    else:
        results = benchmark_host_models(args.models, threads=args.threads, runs=args.runs, warmup=args.warmup,
                                        delegates=args.delegates)
        write_results(results, **outputs)
    print(markdown_table(results), end="")
    failed = [r for r in results if not r.ok]
    if failed:
        raise ValueError(f"{len(failed)} of {len(results)} runs failed (see the status column)")


def cmd_export_android(args):
    from mobilevitv2_tflite.export import export_android

    destination, facts = export_android(args.model, args.app, overwrite=args.overwrite)
    names = facts.get("class_names") or []
    print(f"wrote {destination}: {facts.get('task', 'classification')}, {facts.get('architecture')}, "
          f"{facts.get('precision')}, input "
          f"{facts['input_size'][0]}x{facts['input_size'][1]}, {len(names)} class names; build the app with "
          f"`./gradlew installDebug` in {args.app}")


def _add_train_arguments(parser):
    parser.add_argument("--data", required=True,
                        help="classification: DIR/<class>/*, DIR/train + DIR/val, or TFRecords; segmentation: "
                             "PASCAL VOC, ADE20k, or DIR/images + DIR/masks (also under train/ and val/)")
    parser.add_argument("--model", help="registry name (default mobilevitv2_050, or deeplabv3_mobilevitv2_050 for "
                                        "--task segmentation)")
    parser.add_argument("--task", choices=TASKS, help="default: the model's task")
    parser.add_argument("--out", required=True, help="the run directory")
    _add_image_size(parser, help="training size, S or H W (default: the task's recipe, 256 or 512 crops)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size (default 128)")
    parser.add_argument("--val-data", help="a separate validation folder")
    parser.add_argument("--annotations", help="detection: the COCO annotation file of --data (images folder)")
    parser.add_argument("--val-annotations", help="detection: the COCO annotation file of --val-data")
    parser.add_argument("--val-split", type=float, help="fraction of each class kept for validation (0.1)")
    parser.add_argument("--init-from", help="a .keras model or an official / timm checkpoint to start from")
    parser.add_argument("--skip-head", action="store_true", default=None, help="with --init-from: fresh classifier")
    parser.add_argument("--freeze-backbone", action="store_true", default=None, help="train the classifier only")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--overwrite", action="store_true", help="delete the run in --out and start again")
    parser.add_argument("--strategy", choices=["auto", "mirrored", "multiworker", "default"])
    parser.add_argument("--mixed-precision", action="store_true", default=None)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="repeatable to the bit, resumable exactly (slower input pipeline)")
    parser.add_argument("--multi-scale", action="store_true", default=None,
                        help="MobileViT v1's variable resolution and batch size sampler")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, one line per epoch")
    recipe = parser.add_argument_group("recipe (defaults: chosen from the data, epochs and weights; see --recipe)")
    recipe.add_argument("--recipe", choices=["auto", "official", "small-data"],
                        help="auto (default): the official recipe of the task and model for runs like the "
                             "official ones, else small-data")
    recipe.add_argument("--lr", dest="learning_rate", type=float, help="peak learning rate")
    recipe.add_argument("--min-lr", dest="min_learning_rate", type=float)
    recipe.add_argument("--weight-decay", type=float)
    recipe.add_argument("--warmup-steps", type=int)
    recipe.add_argument("--clipnorm", dest="global_clipnorm", type=float)
    recipe.add_argument("--label-smoothing", type=float)
    recipe.add_argument("--ema-momentum", type=float, help="Keras convention, 0.9995; 0 turns EMA off")
    recipe.add_argument("--output-stride", type=int, choices=[8, 16],
                        help="segmentation: the backbone's output stride (default the model's, 16)")
    recipe.add_argument("--aux-loss-weight", type=float,
                        help="segmentation: the auxiliary head's share of the loss (0.4); 0 trains without it")
    augment = parser.add_argument_group("augmentation")
    augment.add_argument("--augmentation", choices=["recipe", "light", "none", "zoom"],
                         help="preset (default: the recipe's; zoom: detection only)")
    augment.add_argument("--random-resized-crop", action=argparse.BooleanOptionalAction)
    augment.add_argument("--crop-scale", type=float, nargs=2, metavar=("MIN", "MAX"))
    augment.add_argument("--flip", action=argparse.BooleanOptionalAction, help="horizontal flips")
    augment.add_argument("--randaugment", action=argparse.BooleanOptionalAction)
    augment.add_argument("--randaugment-magnitude", type=float)
    augment.add_argument("--random-erasing", type=float, metavar="P")
    augment.add_argument("--mixup", type=float, metavar="ALPHA", help="0 turns it off")
    augment.add_argument("--cutmix", type=float, metavar="ALPHA", help="0 turns it off")


def build_parser():
    parser = argparse.ArgumentParser(prog="mobilevitv2", description=__doc__.split(":")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    common.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's and the converter's own messages and warnings")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    class Commands:  # every subcommand takes --debug and --verbose
        @staticmethod
        def add_parser(name, **kwargs):
            return subparsers.add_parser(name, parents=[common], **kwargs)

    commands = Commands()

    info = commands.add_parser("info", help="parameters, GMACs and output shape of registry models")
    info.add_argument("models", nargs="*", metavar="NAME", help="registry names (default: all of --task)")
    info.add_argument("--task", choices=TASKS, default="classification")
    _add_image_size(info, help="S or H W (default: the task's official size, 256 or 512)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=cmd_info)

    quickstart = commands.add_parser(
        "quickstart", help="the main job: the zoo's table, then MobileViTv2-0.5 on data made here: train, "
                           "convert, evaluate and benchmark, report (classification: the digits, float32 and int8; "
                           "segmentation: digits on photos, DeepLabv3; detection: digits on photos, SSDLite)")
    quickstart.add_argument("--task", choices=TASKS, default="classification")
    quickstart.add_argument("--out", help="where data and run go (default mobilevitv2-quickstart[-TASK])")
    _add_image_size(quickstart, help="training size, S or H W (default 64 for classification, 128 for "
                                     "segmentation and detection)")
    quickstart.add_argument("--epochs", type=int, help="default 8 (segmentation: 10)")
    quickstart.set_defaults(run=cmd_quickstart)

    weights = commands.add_parser(
        "import-weights", help="official (cvnets) or timm checkpoint -> .keras model")
    weights.add_argument("checkpoint", help=".pt, .pth, .bin or .safetensors")
    weights.add_argument("--model", required=True,
                         help="registry name, e.g. mobilevitv2_100 or deeplabv3_mobilevitv2_075")
    weights.add_argument("--out", required=True, help="the .keras file to write")
    _add_image_size(weights, help="input size: S or H W (default: the task's official size, 256 or 512)")
    weights.add_argument("--classes", type=int, default=None,
                         help="classes of the new model (default: the checkpoint's)")
    weights.add_argument("--output-stride", type=int, choices=[8, 16, 32],
                         help="segmentation: default the official configuration of the checkpoint's dataset "
                              "(150 classes, ADE20k: 8; 21, PASCAL VOC: 16)")
    weights.add_argument("--atrous-rates", type=int, nargs=3, metavar="RATE",
                         help="DeepLabv3's ASPP rates (default with the output stride: 12 24 36 at 8, 6 12 18 at 16)")
    weights.add_argument("--skip-head", action="store_true", help="keep a fresh classifier (for other classes)")
    weights.add_argument("--labels", help="class names: a text file, one per line, or a JSON list")
    weights.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    weights.set_defaults(run=cmd_import_weights)

    sample = commands.add_parser(
        "make-sample-data", help="a small real-image data set made here: scikit-learn's digits as an image folder "
                                 "(classification), or pasted on scikit-image's photos with masks (segmentation) "
                                 "or boxes (detection)")
    sample.add_argument("out")
    sample.add_argument("--task", choices=TASKS, default="classification")
    sample.add_argument("--overwrite", action="store_true")
    sample.set_defaults(run=cmd_make_sample_data)

    records = commands.add_parser("make-tfrecords", help="image folder -> TFRecord shards")
    records.add_argument("data")
    records.add_argument("out")
    records.add_argument("--shards", type=int, default=8)
    records.add_argument("--overwrite", action="store_true")
    records.set_defaults(run=cmd_make_tfrecords)

    train = commands.add_parser("train", help="train or fine-tune with keras fit on tf.data")
    _add_train_arguments(train)
    train.set_defaults(run=cmd_train)

    convert = commands.add_parser("convert", help=".keras -> .tflite (fp32, fp16, dynamic, int8), builtin ops only")
    convert.add_argument("model", help="a .keras model of this package, or a QAT run directory (qat)")
    convert.add_argument("--out", required=True, help="the .tflite file to write")
    convert.add_argument("--precision", choices=PRECISIONS, default="fp32")
    convert.add_argument("--calibration-data", help="images for int8 calibration (a folder)")
    convert.add_argument("--calibration-steps", type=int, default=200)
    convert.add_argument("--io-type", choices=IO_TYPES, default="float32",
                         help="input / output type of an int8 model")
    convert.add_argument("--all-int8", action="store_true",
                         help="int8: every op in int8, for integer-only accelerators (NNAPI, Edge TPU). By default "
                              "the ops XNNPACK has no int8 kernel for (norms, softmaxes) stay in float inside the "
                              "file, so that XNNPACK runs the whole graph on the CPU")
    _add_image_size(convert, help="convert at this size, S or H W (default: the model's)")
    convert.add_argument("--strips", type=_strips, default="auto",
                         help="row strips for the stages before the first attention block, so that their feature "
                              "maps stay in the cache: auto (by map size; none at 256x256 or for int8) or a number "
                              "(1: none)")
    convert.add_argument("--outputs", choices=ALL_OUTPUTS,
                         help="a classifier's: probabilities (default: MediaPipe Tasks and the Android app show them "
                              "as they are) or logits; a detector's: detections (default: the post-processing in "
                              "the file, as TFLite_Detection_PostProcess) or raw (box regressions, class logits); a "
                              "segmenter's: head-logits (default: at the head's resolution, resized by the reader), "
                              "logits (at the input size) or mask (the class of every pixel). The file's facts "
                              "record it")
    convert.add_argument("--score-threshold", type=float, help="a detector's post-processing: keep scores from "
                         "this (default 0.01, as the Keras model's)")
    convert.add_argument("--iou-threshold", type=float, help="... NMS IoU threshold (default 0.5)")
    convert.add_argument("--max-detections", type=int, help="... at most this many detections (default 200)")
    convert.add_argument("--fast-nms", action="store_true",
                         help="... NMS over each anchor's best class (the op's fast mode) instead of per class")
    convert.add_argument("--overwrite", action="store_true")
    convert.set_defaults(run=cmd_convert)

    qat = commands.add_parser(
        "qat", help="quantization-aware fine-tuning (tfmot) of a classifier, segmenter or detector: RUN_DIR, "
               "converted to RUN_DIR/model_int8.tflite")
    qat.add_argument("model", help="a .keras model of this package (trained or imported)")
    qat.add_argument("--data", required=True,
                     help="the training data, as train takes it for the model's task: class folders, image / mask "
                          "pairs, or images with boxes (COCO JSON with --annotations, Pascal VOC, or the sample's "
                          "layout)")
    qat.add_argument("--annotations", help="a detector's COCO JSON for --data (a folder of images)")
    qat.add_argument("--out", required=True, help="the run directory")
    qat.add_argument("--epochs", type=int, default=2)
    qat.add_argument("--batch-size", type=int, default=32)
    qat.add_argument("--lr", type=float, default=1e-5, help="peak learning rate, decayed to 0 (cosine)")
    qat.add_argument("--train-batch-norm", action="store_true",
                     help="update BatchNorm statistics too (default: keep the float model's)")
    qat.add_argument("--calibration-steps", type=int, default=200,
                     help="images that calibrate the ops fake-quantization does not cover")
    qat.add_argument("--io-type", choices=IO_TYPES, default="uint8")
    qat.add_argument("--overwrite", action="store_true")
    qat.set_defaults(run=cmd_qat)

    evaluate = commands.add_parser(
        "eval", help="a .keras or .tflite model on labelled data: top-1 / top-5 (classification), mIoU, pixel "
                     "accuracy and IoU per class (segmentation, cvnets' protocol)")
    evaluate.add_argument("model")
    evaluate.add_argument("--data", required=True,
                          help="classification: DIR/<class>/*; segmentation: VOC, ADE20k or images/ + masks/")
    evaluate.add_argument("--split", default="val", help="segmentation, detection: the split (default val)")
    evaluate.add_argument("--annotations", help="detection: the COCO annotation file of --data (images folder)")
    evaluate.add_argument("--reference", help="classification: a model to compare with (agreement, logit "
                                              "differences)")
    evaluate.add_argument("--limit", type=int, help="evaluate N images spread evenly over the data")
    evaluate.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    evaluate.add_argument("--overwrite", action="store_true", help="replace --json if it exists")
    evaluate.set_defaults(run=cmd_eval)

    bench = commands.add_parser(
        "benchmark", help="latency and memory of .tflite files: on this host (LiteRT) or on Android (benchmark_model)")
    bench.add_argument("models", nargs="+", help=".tflite files")
    bench.add_argument("--threads", type=int, nargs="+", default=[1])
    bench.add_argument("--runs", type=int, default=50)
    bench.add_argument("--warmup", type=int, default=5)
    bench.add_argument("--delegates", type=lambda text: [d for d in text.split(",") if d], default=["xnnpack"],
                       help="comma-separated: xnnpack, cpu (host and Android), gpu, nnapi (Android)")
    bench.add_argument("--json", help="write the results as JSON")
    bench.add_argument("--csv", help="write the results as CSV")
    bench.add_argument("--markdown", help="write the results as a Markdown table")
    bench.add_argument("--overwrite", action="store_true", help="replace existing result files")
    bench.add_argument("--android", action="store_true", help="run TFLite's benchmark_model on a device over adb")
    bench.add_argument("--serial", help="the device (adb -s), needed when several are connected")
    bench.add_argument("--benchmark-binary", help="benchmark_model built for the device (see tflite/README.md)")
    bench.add_argument("--adb", default="adb", help="the adb executable")
    bench.set_defaults(run=cmd_benchmark)

    export = commands.add_parser("export-android", help="put a converted .tflite where the Android demo app loads it")
    export.add_argument("model", help="a .tflite made by convert (it carries its facts)")
    export.add_argument("--app", default="android_demo", help="the Android demo project")
    export.add_argument("--overwrite", action="store_true", help="replace another model in the app")
    export.set_defaults(run=cmd_export_android)

    predict = commands.add_parser(
        "predict", help="the top classes of images (classification), or NAME_mask.png and NAME_overlay.png "
                        "for each image in --out-dir (segmentation)")
    predict.add_argument("model", help=".keras or .tflite")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top", type=int, default=5, help="classification: how many classes to print")
    predict.add_argument("--out-dir", help="segmentation, detection: where the masks and overlays, or the "
                                           "detections (NAME.json, NAME_boxes.png) go")
    predict.add_argument("--score-threshold", type=float, default=0.3, help="detection: the lowest score shown")
    predict.add_argument("--overwrite", action="store_true", help="replace masks and overlays that exist")
    predict.set_defaults(run=cmd_predict)
    return parser


def _quiet_libraries():
    """Python-side warnings and absl logging of TensorFlow, Keras and the converter, shown with --verbose."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("absl", "tensorflow", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _one_line(error):
    """The message on one line: a multi-line message (a checkpoint's missing and unexpected keys) joined by ';'."""
    text = ""
    for line in filter(None, (line.strip() for line in str(error).splitlines())):
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text or type(error).__name__


def main(argv=None):
    """Runs one subcommand. A user's error (bad file, flag, data, missing package) is one line naming the
    problem, exit status 2; an unexpected error is one line and how to see its traceback (--debug), 1."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        _quiet_libraries()
    from .files import OutputExistsError
    from .weights import CheckpointError

    try:
        args.run(args)
    except (CheckpointError, OutputExistsError, FileNotFoundError, FileExistsError, IsADirectoryError,
            NotADirectoryError, PermissionError, ValueError, ImportError) as error:
        if args.debug:
            raise
        print(f"mobilevitv2 {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mobilevitv2 {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - anything else is a bug: one line, the traceback on request
        if args.debug:
            raise
        print(f"mobilevitv2 {args.command}: internal error: {type(error).__name__}: {_one_line(error)} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
