"""The command line, through the same entry point users run."""

import json
import re
import subprocess
import sys

from keras_mobilevitv2.cli import main


def test_info_prints_parameters_and_gmacs(capsys):
    assert main(["info", "mobilevitv2_050", "--image-size", "256"]) == 0
    out = capsys.readouterr().out
    assert "mobilevitv2_050" in out and "1,370,593" in out and "0.465" in out and "(None, 1000)" in out


def test_info_json_at_another_size(capsys):
    assert main(["info", "mobilevit_xxs", "mobilevitv2_050", "--image-size", "224", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["mobilevit_xxs", "mobilevitv2_050"]
    assert rows[0]["image_size"] == [224, 224] and rows[0]["params"] == 1_272_024
    assert rows[0]["attention_gmacs"] > 0 and rows[1]["attention_gmacs"] == 0
    assert rows[1]["gmacs"] < 0.465  # fewer pixels, fewer MACs


def test_unknown_model_is_a_one_line_error(capsys):
    assert main(["info", "resnet50"]) == 2
    assert "unknown model 'resnet50'" in capsys.readouterr().err


def test_console_script_help_runs():
    result = subprocess.run([sys.executable, "-m", "keras_mobilevitv2.cli", "--help"],
                            capture_output=True, text=True, check=True)
    for command in ("info", "quickstart", "import-weights"):
        assert command in result.stdout


def test_quickstart_runs_the_pipeline_and_resumes(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out), "--epochs", "2", "--image-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "1,370,593" in printed and "wrote 1797 handwritten digits" in printed and "validation top-1" in printed
    rows = [line.split(" | ") for line in printed.splitlines() if line.startswith(("| float32", "| int8"))]
    assert [row[1] for row in rows] == ["model_fp32.tflite", "model_int8.tflite"]
    top1, agreement = ([float(row[i].rstrip("%")) for row in rows] for i in (3, 4))
    assert min(top1) > 20 and all(float(row[6]) > 0 for row in rows)  # two epochs learn something (chance: 10%)
    assert agreement[0] == 100 and float(rows[0][5]) <= 1e-4  # float32 TFLite computes what Keras computes
    assert agreement[1] >= 70  # int8 keeps most of an undertrained model's close calls
    report = (out / "report.md").read_text()
    assert "| float32 | model_fp32.tflite |" in report and "run/training_curves.png" in report
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"
    # The speed line says which file is faster as the medians do (on some CPUs int8 is the slower one).
    float32_ms, int8_ms = (float(row[6]) for row in rows)
    speed = re.search(r"int8 (runs [0-9.]+x as fast as|takes [0-9.]+x as long as) float32", printed).group(0)
    if float32_ms != int8_ms:
        assert ("as fast as" in speed) == (int8_ms < float32_ms), (speed, float32_ms, int8_ms)

    model_file, int8_file = out / "run" / "model.keras", out / "model_int8.tflite"
    before = model_file.read_bytes(), int8_file.read_bytes()
    assert main(["quickstart", "--out", str(out), "--epochs", "2", "--image-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "all 2 epochs are done" in printed and f"{int8_file}: up to date" in printed
    assert (model_file.read_bytes(), int8_file.read_bytes()) == before  # a finished run is left as it was
