"""The command line, through the same entry point users run."""

import json
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


def test_quickstart_trains_on_the_digits_and_resumes(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out), "--epochs", "2", "--image-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "1,370,593" in printed and "wrote 1797 handwritten digits" in printed and "done: validation top-1" in printed
    model_file = out / "run" / "model.keras"
    before = model_file.read_bytes()
    assert main(["quickstart", "--out", str(out), "--epochs", "2", "--image-size", "32"]) == 0
    assert "all 2 epochs are done" in capsys.readouterr().out
    assert model_file.read_bytes() == before  # a finished run is left as it was
