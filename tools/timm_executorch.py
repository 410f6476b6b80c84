"""timm's models on ExecuTorch's XNNPACK backend, for the peer timing (random weights as timm_models.py makes them).

Runs in its own virtualenv (PyTorch is never a dependency of this kit):

    python -m venv venv_et && venv_et/bin/pip install torch==2.14.1 torchvision==0.29.1 timm executorch==1.5.1

Two commands:

    venv_et/bin/python tools/timm_executorch.py export OUT_DIR --models mobilevitv2_050 [--size 256]
        [--calibration images.npy]
    venv_et/bin/python tools/timm_executorch.py serve --threads 1

``export`` writes ``OUT_DIR/{model}_executorch_{fp32,int8}.pte``, lowered whole to XNNPACK; int8 is
PyTorch's pt2e flow with XNNPACK's quantizer (symmetric, per-channel weights), calibrated on ``--calibration``
(an ``.npy`` of NHWC RGB images in [0, 255]; without it, no int8). Each model takes NCHW float32 RGB in [0, 1].

``serve`` times files for a benchmark that runs in another Python, one JSON object a line on stdin, one
answered on stdout: ``{"load": path}`` loads a file, sets a random input, runs it once and answers
``{"id": n, "init_ms": ..., "first_ms": ...}``; ``{"run": n}`` runs file n once and answers ``{"ms": ...}``,
timed here so that the pipe's latency is not counted. ``--threads``: XNNPACK's thread pool size.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from timm_models import calibration_inputs, random_timm_model


def export(out, names, size, calibration_path):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    calibration = calibration_inputs(calibration_path)
    for name in names:
        model = random_timm_model(name)
        example = (torch.rand(1, 3, size, size),)
        graphs = {"fp32": torch.export.export(model, example, strict=False)}
        if calibration is not None:
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(graphs["fp32"].module(), quantizer)
            with torch.no_grad():
                for image in calibration:
                    prepared(torch.from_numpy(image))
            graphs["int8"] = torch.export.export(convert_pt2e(prepared), example, strict=False)
        for precision, graph in graphs.items():
            program = to_edge_transform_and_lower(graph, partitioner=[XnnpackPartitioner()]).to_executorch()
            path = os.path.join(out, f"{name}_executorch_{precision}.pte")
            with open(path + ".part", "wb") as file:
                program.write_to_file(file)
            os.replace(path + ".part", path)
            print(path, flush=True)


def serve(threads):
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(threads)
    runtime, methods = Runtime.get(), []
    rng = np.random.default_rng(0)
    for line in sys.stdin:
        request = json.loads(line)
        if "load" in request:
            start = time.perf_counter()
            method = runtime.load_program(request["load"]).load_method("forward")
            init_ms = (time.perf_counter() - start) * 1e3
            shape = method.metadata.input_tensor_meta(0).sizes()
            inputs = [torch.from_numpy(rng.uniform(0, 1, shape).astype(np.float32))]
            start = time.perf_counter()
            method.execute(inputs)
            first_ms = (time.perf_counter() - start) * 1e3
            methods.append((method, inputs))
            answer = {"id": len(methods) - 1, "init_ms": init_ms, "first_ms": first_ms}
        else:
            method, inputs = methods[request["run"]]
            start = time.perf_counter()
            method.execute(inputs)
            answer = {"ms": (time.perf_counter() - start) * 1e3}
        print(json.dumps(answer), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export")
    exporting.add_argument("out")
    exporting.add_argument("--models", nargs="+", required=True)
    exporting.add_argument("--size", type=int, default=256)
    exporting.add_argument("--calibration", help=".npy of NHWC RGB images in [0, 255]")
    serving = commands.add_parser("serve")
    serving.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.command == "export":
        export(args.out, args.models, args.size, args.calibration)
    else:
        serve(args.threads)


if __name__ == "__main__":
    main()
