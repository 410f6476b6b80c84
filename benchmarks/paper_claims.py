"""The paper's claims on this machine: MobileViTv2 against MobileViT and MobileNets, linear against quadratic cost.

Three parts (``--parts``), each timed with LiteRT and XNNPACK, batch 1, random
weights, the models of a part taking turns (``benchmark_interleaved``):

- ``zoo``: every MobileViTv2 width, MobileViT XXS / XS / S and keras.applications
  MobileNetV2 and MobileNetV3 Small / Large at 256x256: parameters, GMACs, float32
  and full-int8 latency at 1 and 2 threads, and XNNPACK's partitions of the int8
  files; ours also with every op in int8 (``--all-int8``), to show the float islands.
- ``scaling``: ``mobilevitv2_050`` and ``mobilevit_xxs`` from 256 to 1024, float32,
  1 thread: latency against the number of tokens of the first attention stage,
  and ``mobilevitv2_050`` converted without row strips (``--strips 1``) beside.
  Claims checked: xxs / v2-0.5 at 1024 >= 4, v2-0.5 at 1024 / at 256 <= 20.
- ``peers``: ours against other ports, float32 and int8 (each calibrated on the
  same images), 1 thread: kimm's Keras models through TFLiteConverter, and,
  where a virtualenv with PyTorch and that tool is given, timm's converted by
  litert-torch (int8 through ai-edge-quantizer, tools/timm_litert.py), lowered to
  ExecuTorch's XNNPACK backend (int8 with pt2e, tools/timm_executorch.py, timed by
  its own runtime in that virtualenv, in turns with the rest), and exported to ONNX
  (tools/timm_onnx.py) for ONNX Runtime.

Writes benchmarks/results/paper_{zoo,scaling,peers}.{csv,md}, paper_{zoo,scaling}.png
and paper_claims.md, the parts measured so far together (each with the machine it ran on).

    pip install "kimm>=0.2.5" onnxruntime      # peers only
    python benchmarks/paper_claims.py [--parts zoo scaling peers] [--rounds 10]
        [--torch-python VENV/bin/python] [--litert-torch-python VENV/bin/python]
        [--executorch-python VENV/bin/python]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import keras

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.complexity import count_macs, count_parameters
from keras_mobilevitv2.files import save_figure, write_text
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import xnnpack_delegation

from common import Converter, machine, markdown_table, write_csv

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
SCALING_SIZES = (256, 384, 512, 640, 768, 896, 1024)
# Ours in int8 as `mobilevitv2 convert` writes it (float islands) and with every op in int8 (--all-int8, what
# TFLiteConverter gives), in the same run; the MobileNets as TFLiteConverter converts them.
ZOO_PRECISIONS = ("fp32", "int8", "all-int8")
CLAIMS = {"xxs / v2-0.5 at 1024": (">=", 4.0), "v2-0.5 1024 / 256": ("<=", 20.0)}


def keras_applications(size):
    """The MobileNets, taking RGB in [0, 255] as every model here does."""
    apps = keras.applications
    v2 = apps.MobileNetV2(input_shape=(size, size, 3), weights=None)
    inputs = keras.Input((size, size, 3))
    v2 = keras.Model(inputs, v2(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)), name="mobilenetv2")
    return {"mobilenetv2": v2,
            "mobilenetv3_small": apps.MobileNetV3Small(input_shape=(size, size, 3), weights=None),
            "mobilenetv3_large": apps.MobileNetV3Large(input_shape=(size, size, 3), weights=None)}


def size_and_cost(model):
    """Parameters (PyTorch's count) and GMACs (convolutions and dense layers) of a model and the models inside it."""
    def macs(m):
        return count_macs(m)[0] + sum(macs(layer) for layer in m.layers if isinstance(layer, keras.Model))
    return count_parameters(model), macs(model) / 1e9


def part_zoo(convert, rounds):
    rows, files = [], {}
    models = {name: kmv.create_model(name, input_shape=(256, 256, 3), classifier_activation=None)
              for name in kmv.list_models()}
    models.update(keras_applications(256))
    for name, model in models.items():
        params, gmacs = size_and_cost(model)
        rows.append({"model": name, "params": params, "gmacs": round(gmacs, 3)})
        ours = name in kmv.list_models()
        for precision in ZOO_PRECISIONS if ours else ZOO_PRECISIONS[:2]:
            files[(name, precision)] = convert(name, model, precision.replace("all-", ""), 256, ours=ours,
                                               float_islands=precision == "int8" and ours)
        keras.backend.clear_session()
    for threads in (1, 2):
        timed = benchmark_interleaved({key: (path, threads) for key, path in files.items()}, rounds=rounds, runs=2)
        for row in rows:
            for precision in ZOO_PRECISIONS:
                if (row["model"], precision) in files:
                    row[f"{precision}_ms_{threads}t"] = round(timed[(row["model"], precision)].median_ms, 2)
    for row in rows:
        row["int8_over_fp32_1t"] = round(row["int8_ms_1t"] / row["fp32_ms_1t"], 2)
        for precision in ("int8", "all-int8"):
            if (row["model"], precision) in files:
                row[f"{precision}_partitions"] = xnnpack_delegation(files[(row["model"], precision)]).partitions
    return [{column: row.get(column, "") for column in rows[0]} for row in rows]  # the MobileNets: no all-int8


def tokens(size):
    """Tokens of the first attention stage: 2x2 patches of the stride-8 map."""
    return (size // 16) ** 2


# The scaling series: (label, zoo name, --strips). The whole-image row shows what the row strips are worth.
SCALING_SERIES = (("mobilevitv2_050", "mobilevitv2_050", "auto"), ("mobilevit_xxs", "mobilevit_xxs", "auto"),
                  ("mobilevitv2_050 whole image", "mobilevitv2_050", 1))


def part_scaling(convert, rounds):
    files = {}
    for label, name, strips in SCALING_SERIES:
        for size in SCALING_SIZES:
            model = kmv.create_model(name, input_shape=(size, size, 3), classifier_activation=None)
            files[(label, size)] = convert(name, model, "fp32", size, strips=strips)
            keras.backend.clear_session()
    timed = benchmark_interleaved({key: (path, 1) for key, path in files.items()}, rounds=rounds, runs=1, warmup=2)
    return [{"model": label, "image_size": size, "tokens": tokens(size),
             "fp32_ms_1t": round(timed[(label, size)].median_ms, 2)} for label, size in files]


def _timm_onnx(torch_python, work, names):
    """ONNX files of timm's models exported in the PyTorch environment, or the reason there are none."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {}, "onnxruntime is not installed"
    if not torch_python:
        return {}, "no --torch-python (a Python with torch and timm) was given"
    failure = _run_tool(torch_python, "timm_onnx.py", work, "--models", *names)[1]
    return {} if failure else {name: os.path.join(work, f"{name}.onnx") for name in names}, failure


def _run_tool(python, script, *args):
    """Runs one of tools/ in another Python: ``(the paths it printed, None)`` or ``([], why it failed)``."""
    done = subprocess.run([python, os.path.join(HERE, "..", "tools", script), *args], capture_output=True,
                          text=True)
    if done.returncode:
        return [], f"{script} failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    return [line.strip() for line in done.stdout.splitlines() if os.path.isfile(line.strip())], None


class ExecuTorchRuntime:
    """ExecuTorch files timed by `tools/timm_executorch.py serve` in ExecuTorch's Python, one process a thread
    count, inside ``benchmark_interleaved`` beside the TFLite files."""

    def __init__(self, python):
        self.python, self.servers = python, {}

    def file(self, path):
        return ExecuTorchFile(self, path)

    def server(self, threads):
        if threads not in self.servers:
            process = subprocess.Popen(
                [self.python, os.path.join(HERE, "..", "tools", "timm_executorch.py"), "serve", "--threads",
                 str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

            def ask(request):
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(f"the ExecuTorch server stopped on {request}")
                return json.loads(line)
            self.servers[threads] = (process, ask)
        return self.servers[threads][1]

    def close(self):
        for process, _ in self.servers.values():
            process.stdin.close()
            process.wait()


class ExecuTorchFile:
    """A ``.pte`` file as ``benchmark_interleaved`` takes a peer timed in another process."""
    delegate = "executorch-xnnpack"

    def __init__(self, runtime, path):
        self.runtime, self.path = runtime, path

    def load(self, threads, rng):
        ask = self.runtime.server(threads)
        answer = ask({"load": os.fspath(self.path)})
        return (lambda: ask({"run": answer["id"]})["ms"]), answer["init_ms"]


# Ours against the peers: kimm's Keras models through TFLiteConverter, and timm's through litert-torch (int8 with
# ai-edge-quantizer), ExecuTorch's XNNPACK backend (int8 with pt2e) and ONNX Runtime.
PEER_MODELS = ("mobilevitv2_050", "mobilevitv2_100", "mobilevit_xxs", "mobilevit_s")
RUNTIMES = {"keras_mobilevitv2": "TFLite XNNPACK", "kimm": "TFLite XNNPACK", "timm via litert-torch": "TFLite XNNPACK",
            "timm on ExecuTorch": "ExecuTorch XNNPACK", "timm (ONNX Runtime)": "ONNX Runtime"}


def part_peers(convert, rounds, pythons):
    """``pythons``: {"onnx" | "litert-torch" | "executorch": a Python with torch, timm and that tool, or None}."""
    import kimm
    import numpy as np

    kimm_models = {"mobilevitv2_050": kimm.models.MobileViTV2W050, "mobilevitv2_100": kimm.models.MobileViTV2W100,
                   "mobilevit_xxs": kimm.models.MobileViTXXS, "mobilevit_s": kimm.models.MobileViTS}
    files, notes = {}, []
    for name in PEER_MODELS:
        ours = kmv.create_model(name, input_shape=(256, 256, 3), classifier_activation=None)
        theirs = kimm_models[name](input_shape=(256, 256, 3), weights=None, classifier_activation=None)
        for precision in ("fp32", "int8"):
            files[("keras_mobilevitv2", name, precision)] = convert(f"ours_{name}", ours, precision, 256)
            files[("kimm", name, precision)] = convert(f"kimm_{name}", theirs, precision, 256, ours=False)
        keras.backend.clear_session()
    images = os.path.join(convert.work, "calibration_256.npy")
    np.save(images, np.concatenate([batch[0] for batch in convert.calibration_batches(256)]))
    executorch = None
    for peer, script, args in (("litert-torch", "timm_litert.py", [convert.work]),
                               ("executorch", "timm_executorch.py", ["export", convert.work])):
        if not pythons.get(peer):
            notes.append(f"{peer}: not measured (no --{peer}-python given)")
            continue
        print(f"converting timm's models with {peer}", file=sys.stderr, flush=True)
        paths, failure = _run_tool(pythons[peer], script, *args, "--models", *PEER_MODELS, "--calibration", images)
        if failure:
            notes.append(f"{peer}: not measured ({failure})")
        for path in paths:  # {model}_{litert | executorch}_{fp32 | int8}.{tflite | pte}
            name, _, precision = os.path.splitext(os.path.basename(path))[0].rsplit("_", 2)
            if peer == "executorch":
                executorch = executorch or ExecuTorchRuntime(pythons[peer])
                files[("timm on ExecuTorch", name, precision)] = executorch.file(path)
            else:
                files[("timm via litert-torch", name, precision)] = path
    onnx, note = _timm_onnx(pythons.get("onnx"), convert.work, ["mobilevitv2_050", "mobilevit_xxs"])
    if note:
        notes.append(f"timm through ONNX Runtime: not measured ({note})")
    for name, path in onnx.items():
        files[("timm (ONNX Runtime)", name, "fp32")] = path
    # One thread: at two, runtimes in two processes disturb each other (their thread pools spin between calls).
    try:
        timed = benchmark_interleaved({key: (path, 1) for key, path in files.items()}, rounds=rounds, runs=2)
    finally:
        if executorch:
            executorch.close()
    rows = []
    for implementation in RUNTIMES:
        for name in PEER_MODELS:
            for precision in ("fp32", "int8"):
                key = (implementation, name, precision)
                if key in files:
                    ms, ours = timed[key].median_ms, timed[("keras_mobilevitv2", name, "fp32")].median_ms
                    rows.append({"implementation": implementation, "model": name, "precision": precision,
                                 "runtime": RUNTIMES[implementation], "ms_1t": round(ms, 2),
                                 "over_ours_fp32": round(ms / ours, 2)})
    return rows, notes


def plot_zoo(rows, path):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, precision in zip(axes, ("fp32", "int8")):
        for family, colour, marker in (("mobilevitv2", "tab:blue", "o"), ("mobilevit_", "tab:orange", "s"),
                                       ("mobilenet", "tab:gray", "^")):
            chosen = [r for r in rows if r["model"].startswith(family)]
            axis.plot([r["gmacs"] for r in chosen], [r[f"{precision}_ms_1t"] for r in chosen], marker,
                      color=colour, label=family.rstrip("_"), linestyle="-" if family == "mobilevitv2" else "")
            for r in chosen:
                axis.annotate(r["model"].replace("mobilevit", "mvit").replace("mobilenet", "mnet"),
                              (r["gmacs"], r[f"{precision}_ms_1t"]), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")
        axis.set_xlabel("GMACs at 256x256")
        axis.set_title(f"{precision}, 1 thread")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("median ms per image (TFLite XNNPACK)")
    axes[0].legend()
    save_figure(figure, path)


def plot_scaling(rows, path):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for name, colour, style in (("mobilevitv2_050", "tab:blue", "o-"), ("mobilevit_xxs", "tab:orange", "o-"),
                                ("mobilevitv2_050 whole image", "tab:blue", "x:")):
        chosen = [r for r in rows if r["model"] == name]
        axis.plot([r["tokens"] for r in chosen], [r["fp32_ms_1t"] for r in chosen], style, color=colour, label=name)
        for r in chosen if name != "mobilevitv2_050 whole image" else ():
            axis.annotate(str(r["image_size"]), (r["tokens"], r["fp32_ms_1t"]), fontsize=7, xytext=(3, -9),
                          textcoords="offset points")
    start = next(r for r in rows if r["model"] == "mobilevitv2_050")
    ends = [start["tokens"], max(r["tokens"] for r in rows)]
    axis.plot(ends, [start["fp32_ms_1t"] * t / start["tokens"] for t in ends], "--", color="gray", linewidth=0.8,
              label="linear from mobilevitv2_050 at 256")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("tokens in the first attention stage (image size / 16)^2")
    axis.set_ylabel("median ms per image, fp32, 1 thread")
    axis.set_title("Linear (MobileViTv2) against quadratic (MobileViT) attention")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    save_figure(figure, path)


def claims(scaling):
    by = {(r["model"], r["image_size"]): r["fp32_ms_1t"] for r in scaling}
    measured = {"xxs / v2-0.5 at 1024": by[("mobilevit_xxs", 1024)] / by[("mobilevitv2_050", 1024)],
                "v2-0.5 1024 / 256": by[("mobilevitv2_050", 1024)] / by[("mobilevitv2_050", 256)]}
    return {name: (value, CLAIMS[name], (value >= CLAIMS[name][1]) if CLAIMS[name][0] == ">="
                   else (value <= CLAIMS[name][1])) for name, value in measured.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=["zoo", "scaling", "peers"], default=["zoo", "scaling", "peers"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--torch-python", help="a Python with torch, timm and onnx, to export timm's models to ONNX")
    parser.add_argument("--litert-torch-python", help="a Python with timm, litert-torch and ai-edge-quantizer "
                        "(see tools/timm_litert.py)")
    parser.add_argument("--executorch-python", help="a Python with timm and executorch (tools/timm_executorch.py)")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    header = (f"Measured on {machine()}; TFLite (ai-edge-litert) with XNNPACK, batch 1, random weights, median of "
              f"{args.rounds} rounds with the models of each table taking turns. Command: "
              f"`python benchmarks/paper_claims.py --parts {' '.join(args.parts)}`.")
    ok = True
    with tempfile.TemporaryDirectory() as work:
        convert = Converter(work)
        if "zoo" in args.parts:
            rows = part_zoo(convert, args.rounds)
            write_csv(rows, os.path.join(args.out, "paper_zoo.csv"))
            plot_zoo(rows, os.path.join(args.out, "paper_zoo.png"))
            write_part(args.out, "zoo", [
                "## The zoo against MobileViT and MobileNets, 256x256", "", header, "", *markdown_table(rows), "",
                "![latency against GMACs](paper_zoo.png)"])
        if "scaling" in args.parts:
            rows = part_scaling(convert, args.rounds)
            write_csv(rows, os.path.join(args.out, "paper_scaling.csv"))
            plot_scaling(rows, os.path.join(args.out, "paper_scaling.png"))
            lines = ["## Latency against tokens, 256 to 1024, fp32, 1 thread", "", header, "", *markdown_table(rows),
                     "", "| claim | measured | target | met |", "| --- | ---: | --- | --- |"]
            for name, (value, (sign, target), met) in claims(rows).items():
                lines.append(f"| {name} | {value:.2f} | {sign} {target:g} | {'yes' if met else 'no'} |")
                ok &= met
            write_part(args.out, "scaling", lines + ["", "![latency against tokens](paper_scaling.png)"])
        if "peers" in args.parts:
            pythons = {"onnx": args.torch_python, "litert-torch": args.litert_torch_python,
                       "executorch": args.executorch_python}
            rows, notes = part_peers(convert, args.rounds, pythons)
            write_csv(rows, os.path.join(args.out, "paper_peers.csv"))
            lines = ["## Peers in the same run, 256x256, 1 thread", "", header, "",
                     "`over_ours_fp32`: time over this kit's float32 file of the same model in the same run.", "",
                     *markdown_table(rows)]
            if notes:
                lines += ["", *(f"- {note}." for note in notes)]
            write_part(args.out, "peers", lines)
    parts = [os.path.join(args.out, f"paper_{part}.md") for part in ("zoo", "scaling", "peers")]
    text = "\n\n".join(open(path, encoding="utf-8").read().strip() for path in parts if os.path.exists(path)) + "\n"
    write_text(os.path.join(args.out, "paper_claims.md"), text)
    print(text)
    return 0 if ok else 1


def write_part(out, part, lines):
    write_text(os.path.join(out, f"paper_{part}.md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
