"""Training throughput: our training step, our input pipeline, and the peers under the same fit loop.

Measures images/s of (1) the input pipeline alone (the recipe's augmentation on the
bundled digits at the model's size), (2) our training step for mobilevitv2_050 on
in-memory batches, (3) kimm's MobileViTV2W050 under the same compile and fit, and
(4) timm's training step in a PyTorch environment when ``--torch-python`` is given.
Alternates the Keras models over several rounds and reports medians and ratios.
Writes benchmarks/results/train_throughput.json and .md.

    python benchmarks/train_throughput.py [--image-size 256] [--batch-size 32] [--torch-python PY]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import keras
import keras_mobilevitv2 as kmv
from keras_mobilevitv2.data import AugmentConfig, make_sample_data, make_train_dataset, scan_image_folder
from keras_mobilevitv2.training import TrainConfig, make_optimizer

HERE = os.path.dirname(os.path.abspath(__file__))

TIMM_STEP = """
import sys, time, torch, timm
size, batch, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
model = timm.create_model("mobilevitv2_050", num_classes=10).train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
x, y = torch.rand(batch, 3, size, size), torch.randint(0, 10, (batch,))
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
def step():
    optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
for _ in range(3): step()
start = time.perf_counter()
for _ in range(steps): step()
print(batch * steps / (time.perf_counter() - start))
"""


def compiled(model, steps):
    config, _ = TrainConfig(epochs=1, batch_size=32, recipe="official").resolved(steps, steps * 32, 10)
    model.compile(optimizer=make_optimizer(config, steps),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                  jit_compile=False)
    return model


def step_throughput(model, images, labels, steps):
    """Images/s of model.fit on batches held in memory (no input pipeline in the way)."""
    import tensorflow as tf

    batch = len(images)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch-python", help="a Python with torch and timm, for timm's training step")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "train_throughput"))
    args = parser.parse_args()
    size, batch = args.image_size, args.batch_size

    data = os.path.join(tempfile.mkdtemp(prefix="digits_"), "digits")
    make_sample_data(data)
    folder = scan_image_folder(data, progress=False)
    pipeline, _ = make_train_dataset(folder, (size, size), batch, AugmentConfig.preset("recipe"),
                                                   epochs=1)
    iterator = iter(pipeline)
    next(iterator)
    start = time.perf_counter()
    count = 0
    for images, _ in iterator:
        count += len(images)
    pipeline_rate = count / (time.perf_counter() - start)

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    labels = keras.utils.to_categorical(rng.integers(0, 10, batch), 10).astype(np.float32)
    ours = compiled(kmv.create_model("mobilevitv2_050", input_shape=(size, size, 3), classes=10,
                                     classifier_activation=None), args.steps)
    peers = {"ours": ours}
    try:
        import kimm

        kimm_model = kimm.models.MobileViTV2W050(input_shape=(size, size, 3), classes=10, dropout_rate=0.0,
                                                 classifier_activation=None, weights=None)
        peers["kimm"] = compiled(kimm_model, args.steps)
    except ImportError:
        print("kimm is not installed (pip install kimm): skipping it", file=sys.stderr)
    rates = {name: [] for name in peers}
    for round_index in range(args.rounds):
        for name, model in peers.items():
            rates[name].append(step_throughput(model, images, labels, args.steps))
            print(f"round {round_index + 1}: {name} {rates[name][-1]:.1f} images/s", flush=True)
    results = {name: statistics.median(values) for name, values in rates.items()}
    if args.torch_python:
        output = subprocess.run([args.torch_python, "-c", TIMM_STEP, str(size), str(batch), str(args.steps)],
                                capture_output=True, text=True, check=True).stdout
        results["timm"] = float(output.strip().splitlines()[-1])

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "image_size": size, "batch_size": batch,
        "pipeline_images_per_s": pipeline_rate,
        "step_images_per_s": results,
        "pipeline_over_step": pipeline_rate / results["ours"],
        "ours_over_peers": {k: results["ours"] / v for k, v in results.items() if k != "ours"},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(report, file, indent=1)
    with open(args.out + ".md", "w") as file:
        file.write(f"Training throughput, mobilevitv2_050 at {size}x{size}, batch {batch}, {report['machine']}\n\n")
        file.write("| what | images/s |\n| --- | ---: |\n")
        file.write(f"| input pipeline (recipe augmentation) | {pipeline_rate:.1f} |\n")
        for name, rate in results.items():
            file.write(f"| training step, {name} | {rate:.1f} |\n")
        file.write(f"\npipeline / our step: {report['pipeline_over_step']:.2f}; "
                   + ", ".join(f"ours / {k}: {v:.2f}" for k, v in report["ours_over_peers"].items()) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
