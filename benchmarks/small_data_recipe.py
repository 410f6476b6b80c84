"""The small-data recipe against the README's hand-tuned flags and the official recipe, on the digits.

Trains mobilevitv2_050 on scikit-learn's 1,797 digits (80% train, the same 20%
validation for every run) with ``train``'s defaults and with explicit settings,
and records each run's last and best validation top-1:

- ``short``: 4 epochs at batch 64, 32x32 and 64x64: the defaults (small-data: light augmentation, lr
  0.002 at any batch), the official recipe (lr scaled linearly to 0.00056, RandAugment, MixUp, CutMix),
  and the square-root batch scaling of the small-data rate (0.0028) that the defaults do not take.
- ``long``: the defaults for 30 epochs at 32x32, batch 64.
- ``fine-tune``: a model trained on the digits 0-4 (12 epochs, defaults) fine-tuned on 5-9 for 3 epochs
  at learning rates 0.0005 to 0.004 (the defaults take 0.002), and the same 3 epochs from scratch.

Runs already in the results are kept (delete the file to measure again). Writes
benchmarks/results/small_data_recipe.json and .md.

    python benchmarks/small_data_recipe.py [short] [long] [fine-tune] [--work DIR]
"""

import argparse
import json
import os
import shutil
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "small_data_recipe")

PRETRAINING = "digits 0-4 from scratch, 12 epochs"  # its model.keras starts the fine-tuning runs ("PRETRAINED")
# name -> (group, training data: digits / first / second half of the classes, settings)
RUNS = {
    "defaults, 32x32, 4 epochs": ("short", "digits", dict(image_size=32, epochs=4, batch_size=64)),
    "official recipe, 32x32, 4 epochs": ("short", "digits", dict(image_size=32, epochs=4, batch_size=64,
                                                                  recipe="official")),
    "lr 0.0028 (square-root scaling), 32x32, 4 epochs": ("short", "digits", dict(
        image_size=32, epochs=4, batch_size=64, learning_rate=0.002 * 2 ** 0.5)),
    "defaults, 64x64, 4 epochs": ("short", "digits", dict(image_size=64, epochs=4, batch_size=64)),
    "lr 0.0028 (square-root scaling), 64x64, 4 epochs": ("short", "digits", dict(
        image_size=64, epochs=4, batch_size=64, learning_rate=0.002 * 2 ** 0.5)),
    "defaults, 32x32, 30 epochs": ("long", "digits", dict(image_size=32, epochs=30, batch_size=64)),
    PRETRAINING: ("fine-tune", "0-4", dict(image_size=32, epochs=12, batch_size=32)),
    **{f"5-9 fine-tuned, lr {lr}, 3 epochs": ("fine-tune", "5-9", dict(
        image_size=32, epochs=3, batch_size=32, learning_rate=lr, init_from="PRETRAINED", skip_head=True))
       for lr in (0.0005, 0.001, 0.002, 0.004)},
    "5-9 from scratch, 3 epochs": ("fine-tune", "5-9", dict(image_size=32, epochs=3, batch_size=32)),
}


def _data(work, which):
    from keras_mobilevitv2.data import make_sample_data

    digits = os.path.join(work, "digits")
    if not os.path.isdir(digits):
        make_sample_data(digits)
    if which == "digits":
        return digits
    folder = os.path.join(work, which)
    if not os.path.isdir(folder):
        low, high = (int(c) for c in which.split("-"))
        for label in range(low, high + 1):
            shutil.copytree(os.path.join(digits, str(label)), os.path.join(folder, str(label)))
    return folder


def main():
    from keras_mobilevitv2.files import write_json, write_text
    from keras_mobilevitv2.training import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("groups", nargs="*", default=["short", "long", "fine-tune"])
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "small_data_recipe"))
    args = parser.parse_args()
    results = {}
    if os.path.isfile(RESULTS + ".json"):
        with open(RESULTS + ".json") as file:
            results = json.load(file)
    for name, (group, which, settings) in RUNS.items():
        if group not in args.groups or name in results:
            continue
        if settings.get("init_from") == "PRETRAINED":
            settings = dict(settings, init_from=os.path.join(args.work, "runs", "pretrained", "model.keras"))
        run_dir = os.path.join(args.work, "runs", "pretrained" if name == PRETRAINING else "run")
        start = time.time()
        result = train(_data(args.work, which), run_dir, overwrite=True, verbose=0, model="mobilevitv2_050",
                       val_split=0.2, **settings)
        with open(os.path.join(run_dir, "config.json")) as file:
            resolved = json.load(file)["resolved"]
        results[name] = dict(
            settings={k: v for k, v in settings.items() if k != "init_from"}, recipe=resolved["recipe"],
            learning_rate=resolved["learning_rate"], augmentation=resolved["augmentation"],
            last=float(result.history[-1]["val_accuracy"]),
            best=max(float(row["val_accuracy"]) for row in result.history), seconds=round(time.time() - start))
        print(name, results[name], flush=True)
        write_json(RESULTS + ".json", results)
    rows = ["| run | recipe | peak lr | augmentation | val top-1 (last) | best |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['recipe']} | {r['learning_rate']:.2g} | {r['augmentation']} | "
                    f"{r['last']:.2%} | {r['best']:.2%} |")
    write_text(RESULTS + ".md", "# The small-data recipe on the digits (mobilevitv2_050, batch 64; fine-tuning "
               "batch 32)\n\n`python benchmarks/small_data_recipe.py`\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
