"""How far float32 ``mobilevitv2_050`` is from its matrix-product floor on this CPU.

Times, in turns (LiteRT, XNNPACK, 1 thread, batch 1), one large 1x1 convolution
(a 64x64 map, 512 to 512 channels: 2.15 GFLOP, the shape XNNPACK's matrix kernels
run fastest) and ``mobilevitv2_050`` at 256x256 as `mobilevitv2 convert` converts
it. The convolution's rate makes the floor: the model's multiply-adds (2 FLOP
each) as pure matrix products at that rate. Writes
benchmarks/results/gemm_floor.{json,md}.

    python benchmarks/gemm_floor.py [--rounds 20]
"""

import argparse
import os
import tempfile

import keras

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.files import write_json, write_text
from mobilevitv2_tflite.benchmark import benchmark_interleaved
from mobilevitv2_tflite.convert import tflite_content

from common import Converter, machine
from paper_claims import size_and_cost

HERE = os.path.dirname(os.path.abspath(__file__))
MAP, CHANNELS = 64, 512


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "gemm_floor"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        model = kmv.create_model("mobilevitv2_050", input_shape=(256, 256, 3), classifier_activation=None)
        model_flop = 2 * size_and_cost(model)[1] * 1e9
        files = {"mobilevitv2_050": Converter(work)("mobilevitv2_050", model, "fp32", 256)}
        inputs = keras.Input((MAP, MAP, CHANNELS), batch_size=1)
        convolution = keras.Model(inputs, keras.layers.Conv2D(CHANNELS, 1)(inputs))
        files["1x1 convolution"] = os.path.join(work, "convolution.tflite")
        with open(files["1x1 convolution"], "wb") as file:
            file.write(tflite_content(convolution, "fp32"))
        timed = benchmark_interleaved({name: (path, 1) for name, path in files.items()}, rounds=args.rounds, runs=3)
    convolution_ms, model_ms = timed["1x1 convolution"].median_ms, timed["mobilevitv2_050"].median_ms
    rate = 2 * MAP * MAP * CHANNELS * CHANNELS / convolution_ms / 1e6  # GFLOP/s
    floor_ms = model_flop / rate / 1e6
    results = {"machine": machine(), "convolution_ms": round(convolution_ms, 3), "gflop_per_s": round(rate, 1),
               "model_gflop": round(model_flop / 1e9, 3), "model_ms": round(model_ms, 2),
               "floor_ms": round(floor_ms, 2), "floor_over_model": round(floor_ms / model_ms, 2)}
    write_json(args.out + ".json", results)
    text = (f"float32 `mobilevitv2_050` at 256x256 against its matrix-product floor; {machine()}; LiteRT XNNPACK, "
            f"1 thread, median of {args.rounds} rounds taking turns. Command: `python benchmarks/gemm_floor.py`.\n\n"
            f"| 1x1 convolution {MAP}x{MAP}x{CHANNELS} to {CHANNELS} | rate | model GFLOP | floor | model | "
            f"floor / model |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n"
            f"| {convolution_ms:.3f} ms | {rate:.1f} GFLOP/s | {model_flop / 1e9:.3f} | {floor_ms:.2f} ms | "
            f"{model_ms:.2f} ms | {floor_ms / model_ms:.2f} |\n")
    write_text(args.out + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
