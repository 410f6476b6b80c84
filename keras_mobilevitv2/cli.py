"""The ``mobilevitv2`` command: a thin layer over the Python API, one function per subcommand."""

import argparse
import json
import os
import sys


def _model_table(rows):
    header = f"{'model':<17} {'params':>12} {'GMACs':>7} {'attn GMACs':>10} {'top-1 (paper)':>13}  output"
    lines = [header, "-" * len(header)]
    for row in rows:
        top1 = row.get("reference_top1")
        lines.append(
            f"{row['model']:<17} {row['params']:>12,} {row['gmacs']:>7.3f} {row['attention_gmacs']:>10.3f} "
            f"{'' if top1 is None else f'{top1:.2f}':>13}  {tuple(row['output_shape'])}")
    return "\n".join(lines)


def _describe_models(names, image_size):
    from .architectures import get_architecture
    from .complexity import describe

    rows = []
    for name in names:
        row = describe(name, image_size)
        row["reference_top1"] = get_architecture(name).reference_top1 if image_size == 256 else None
        rows.append(row)
    return rows


def cmd_info(args):
    from .models import list_models

    rows = _describe_models(args.models or list_models(), args.image_size)
    print(json.dumps(rows, indent=2) if args.json else _model_table(rows))


def cmd_quickstart(args):
    from .models import list_models

    names = list_models()
    print(f"Building the {len(names)} models of the zoo at {args.image_size}x{args.image_size} ...", flush=True)
    rows = []
    for index, name in enumerate(names, start=1):
        print(f"  [{index}/{len(names)}] {name}", flush=True)
        rows.extend(_describe_models([name], args.image_size))
    print()
    print(_model_table(rows))


def cmd_import_weights(args):
    from .weights import import_checkpoint

    model = import_checkpoint(
        args.checkpoint, args.model, args.out, image_size=args.image_size, classes=args.classes,
        skip_head=args.skip_head, labels=args.labels, overwrite=args.overwrite)
    print(f"wrote {args.out}: {model.name}, input {model.input_shape}, output {model.output_shape} (logits)")


def build_parser():
    parser = argparse.ArgumentParser(prog="mobilevitv2", description=__doc__.split(":")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="parameters, GMACs and output shape of zoo models")
    info.add_argument("models", nargs="*", metavar="NAME", help="zoo names (default: all)")
    info.add_argument("--image-size", type=int, default=256)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=cmd_info)

    quickstart = commands.add_parser("quickstart", help="the main job: build the zoo and show what it holds")
    quickstart.add_argument("--image-size", type=int, default=256)
    quickstart.set_defaults(run=cmd_quickstart)

    weights = commands.add_parser(
        "import-weights", help="official (cvnets) or timm checkpoint -> .keras model")
    weights.add_argument("checkpoint", help=".pt, .pth, .bin or .safetensors")
    weights.add_argument("--model", required=True, help="zoo name, e.g. mobilevitv2_100")
    weights.add_argument("--out", required=True, help="the .keras file to write")
    weights.add_argument("--image-size", type=int, default=256)
    weights.add_argument("--classes", type=int, default=None, help="classes of the new model (default 1000)")
    weights.add_argument("--skip-head", action="store_true", help="keep a fresh classifier (for other classes)")
    weights.add_argument("--labels", help="class names: a text file, one per line, or a JSON list")
    weights.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    weights.set_defaults(run=cmd_import_weights)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the output
    from .files import OutputExistsError
    from .weights import CheckpointError

    try:
        args.run(args)
    except (CheckpointError, OutputExistsError, FileNotFoundError, ValueError, ImportError) as error:
        print(f"mobilevitv2 {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
