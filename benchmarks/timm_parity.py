"""Parity of every zoo model with timm: import timm's checkpoints, compare logits.

Makes the timm references with PyTorch in a separate environment (``--torch-python``,
see tools/timm_reference.py) unless ``--reference-dir`` already holds them, then
imports each ``.pth`` and ``.safetensors`` and compares logits at every size.
Writes benchmarks/results/timm_parity.csv and .md.

    python benchmarks/timm_parity.py --torch-python /opt/torchenv/bin/python
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile

import numpy as np

import keras_mobilevitv2 as kmv

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = ("256x256", "224x224", "224x320")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-dir", help="output of tools/timm_reference.py (made if missing)")
    parser.add_argument("--torch-python", default=sys.executable, help="a Python with torch and timm")
    parser.add_argument("--models", nargs="+", default=kmv.list_models())
    parser.add_argument("--out", default=os.path.join(HERE, "results", "timm_parity"))
    args = parser.parse_args()

    reference_dir = args.reference_dir or tempfile.mkdtemp(prefix="timm_reference_")
    missing = [m for m in args.models if not os.path.exists(os.path.join(reference_dir, f"{m}.npz"))]
    if missing:
        script = os.path.join(HERE, "..", "tools", "timm_reference.py")
        subprocess.run([args.torch_python, script, reference_dir, "--models", *missing, "--sizes", *SIZES],
                       check=True)

    rows = []
    for name in args.models:
        reference = np.load(os.path.join(reference_dir, f"{name}.npz"))
        for checkpoint in (f"{name}.pth", f"{name}.safetensors"):
            for size in SIZES:
                height, width = (int(s) for s in size.split("x"))
                model = kmv.create_model(name, input_shape=(height, width, 3), classifier_activation=None)
                kmv.load_pytorch_checkpoint(model, os.path.join(reference_dir, checkpoint))
                logits = model.predict(reference[f"images_{size}"].astype(np.float32), verbose=0)
                difference = float(np.abs(logits - reference[f"logits_{size}"]).max())
                rows.append({"model": name, "file": checkpoint.split(".")[-1], "size": size,
                             "max_abs_diff": f"{difference:.2e}",
                             "max_abs_logit": f"{np.abs(reference[f'logits_{size}']).max():.2f}",
                             "pass": difference <= 1e-4})
                print(f"{name:<17} {rows[-1]['file']:<12} {size:<8} max |diff| {difference:.2e}", flush=True)

    with open(args.out + ".csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(args.out + ".md", "w") as file:
        file.write("| model | " + " | ".join(f"{s} .pth | {s} .safetensors" for s in SIZES) + " |\n")
        file.write("| --- |" + " --- |" * (2 * len(SIZES)) + "\n")
        for name in args.models:
            cells = []
            for size in SIZES:
                for kind in ("pth", "safetensors"):
                    row = next(r for r in rows if r["model"] == name and r["size"] == size and r["file"] == kind)
                    cells.append(row["max_abs_diff"])
            file.write(f"| {name} | " + " | ".join(cells) + " |\n")
    failed = [r for r in rows if not r["pass"]]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed (max |logit difference| <= 1e-4)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
