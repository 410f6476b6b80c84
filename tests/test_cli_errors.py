"""Every subcommand, given bad input through the installed ``mobilevitv2`` script: one line that names the
problem, exit status 2, no traceback and none of TensorFlow's native start-up lines."""

import concurrent.futures
import os
import shutil
import subprocess

SCRIPT = shutil.which("mobilevitv2")  # installed by the README's test command (pip install ".[test]")


def _bad_inputs(folder):
    """(subcommand arguments, what the one line must name) for each subcommand."""
    missing = os.path.join(folder, "missing")
    text = os.path.join(folder, "notes.keras")
    with open(text, "w") as file:
        file.write("not a model")
    full = os.path.join(folder, "full")
    os.makedirs(full)
    with open(os.path.join(full, "keep.txt"), "w") as file:
        file.write("the user's")
    return [
        (["info", "resnet50"], "unknown model 'resnet50'"),
        (["quickstart", "--out", text], text),
        (["import-weights", missing + ".pt", "--model", "mobilevitv2_050", "--out", missing + ".keras"],
         missing + ".pt"),
        (["make-sample-data", full], full),
        (["make-tfrecords", missing, os.path.join(folder, "records")], missing),
        (["train", "--data", missing, "--out", os.path.join(folder, "run"), "--model", "mobilevitv2_050"], missing),
        (["convert", text, "--out", missing + ".tflite"], text),
        (["qat", text, "--data", missing, "--out", missing + ".tflite"], text),
        (["eval", missing + ".tflite", "--data", folder], missing + ".tflite"),
        (["predict", text, os.path.join(folder, "photo.jpg")], text),
        (["benchmark", missing + ".tflite"], missing + ".tflite"),
        (["export-android", missing + ".tflite"], missing + ".tflite"),
    ]


def _run(arguments):
    assert SCRIPT, "the mobilevitv2 console script is not installed"
    return subprocess.run([SCRIPT, *arguments], capture_output=True, text=True, timeout=300)


def test_every_subcommand_reports_bad_input_in_one_line(tmp_path):
    cases = _bad_inputs(str(tmp_path))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(_run, [arguments for arguments, _ in cases]))
    for (arguments, named), result in zip(cases, results):
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr and len(lines) == 1, (arguments, result.stderr[-3000:])
        assert result.returncode == 2 and lines[0].startswith(f"mobilevitv2 {arguments[0]}: error: "), \
            (arguments, result.returncode, lines)
        assert named in lines[0], (arguments, lines[0])
    assert open(tmp_path / "full" / "keep.txt").read() == "the user's"
    assert open(tmp_path / "notes.keras").read() == "not a model"


def test_debug_shows_the_traceback_and_verbose_tensorflows_lines(tmp_path):
    result = _run(["convert", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "m.tflite"), "--debug"])
    assert result.returncode == 1 and "Traceback" in result.stderr
    result = _run(["info", "resnet50", "--verbose"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) > 1
