"""Benchmarking .tflite files: on this host with LiteRT, and on Android through a fake adb."""

import csv
import json
import os
import shlex
import sys

import pytest

import keras_mobilevitv2 as kmv
from keras_mobilevitv2.cli import main as cli_main
from mobilevitv2_tflite.android import (AndroidBenchmarkError, benchmark_android, parse_benchmark_output,
                                        remote_names)
from mobilevitv2_tflite.benchmark import benchmark_host, benchmark_interleaved
from mobilevitv2_tflite.convert import convert

from conftest import FIXTURES

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUTS = os.path.join(FIXTURES, "benchmark_model")


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """mobilevitv2_050 at 64x64 as float32 and as full int8 with uint8 input."""
    from keras_mobilevitv2.data import make_sample_data

    root = tmp_path_factory.mktemp("bench")
    model = kmv.create_model("mobilevitv2_050", input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    model.save(root / "m.keras")
    make_sample_data(root / "digits")
    convert(str(root / "m.keras"), str(root / "fp32.tflite"))
    convert(str(root / "m.keras"), str(root / "int8.tflite"), precision="int8", calibration_data=str(root / "digits"),
            calibration_steps=20, io_type="uint8")
    return str(root / "fp32.tflite"), str(root / "int8.tflite")


def test_host_benchmark_reports_benchmark_model_figures(small_models):
    for path in small_models:
        result = benchmark_host(path, threads=1, runs=12, warmup=3)
        assert result.ok and result.runs == 12 and result.device == "host" and result.delegate == "xnnpack"
        assert result.init_ms > 0 and result.first_ms > 0 and result.warmup_avg_ms > 0
        assert result.min_ms <= result.p5_ms <= result.median_ms <= result.p95_ms <= result.max_ms
        assert result.min_ms <= result.avg_ms <= result.max_ms and result.std_ms >= 0
        assert result.peak_memory_mb is not None and result.peak_memory_mb >= result.memory_init_mb - 1e-6
    reference = benchmark_host(small_models[0], runs=3, warmup=0, delegate="cpu")
    assert reference.ok and reference.delegate == "cpu"


def test_interleaved_timing_records_what_a_peer_in_another_process_measured(small_models):
    """A peer timed by its own runtime in another process (ExecuTorch's, say) reports each call's time; that time
    is recorded, not the round trip around it, beside the .tflite files timed here."""
    import time

    class OtherProcess:
        path, delegate = "peer.pte", "executorch-xnnpack"

        def load(self, threads, rng):
            self.threads = threads

            def invoke():
                time.sleep(0.004)  # the pipe and the other process's work
                return 0.5
            return invoke, 2.0

    peer = OtherProcess()
    timed = benchmark_interleaved({"fp32": (small_models[0], 1), "peer": (peer, 2)}, rounds=3, runs=2, warmup=1,
                                  progress=False)
    assert peer.threads == 2
    assert timed["peer"].median_ms == timed["peer"].max_ms == 0.5 and timed["peer"].runs == 6
    assert timed["peer"].delegate == "executorch-xnnpack" and timed["peer"].model == "peer.pte"
    assert timed["peer"].init_ms == 2.0 and timed["peer"].threads == 2
    assert timed["fp32"].delegate == "xnnpack" and timed["fp32"].model == small_models[0]
    assert 0 < timed["fp32"].min_ms <= timed["fp32"].median_ms and timed["fp32"].runs == 6


def test_benchmark_command_writes_every_format_and_keeps_existing_files(small_models, tmp_path, capsys):
    fp32, int8 = small_models
    out = {kind: str(tmp_path / f"r.{kind}") for kind in ("json", "csv", "md")}
    assert cli_main(["benchmark", fp32, int8, "--threads", "1", "2", "--runs", "4", "--warmup", "1",
                     "--json", out["json"], "--csv", out["csv"], "--markdown", out["md"]]) == 0
    rows = json.load(open(out["json"]))
    assert [(os.path.basename(r["model"]), r["threads"]) for r in rows] == [
        ("fp32.tflite", 1), ("fp32.tflite", 2), ("int8.tflite", 1), ("int8.tflite", 2)]
    assert all(r["status"] == "ok" and r["runs"] == 4 for r in rows)
    assert len(list(csv.DictReader(open(out["csv"])))) == 4
    assert open(out["md"]).read().count("\n| int8.tflite | host |") == 2
    assert "| fp32.tflite | host | 2 | xnnpack |" in capsys.readouterr().out

    before = open(out["json"]).read()
    assert cli_main(["benchmark", fp32, "--runs", "2", "--json", out["json"]]) == 2
    assert "exists" in capsys.readouterr().err and open(out["json"]).read() == before
    assert cli_main(["benchmark", str(tmp_path / "missing.tflite")]) == 2
    assert "missing.tflite: no such model file" in capsys.readouterr().err


def test_benchmark_model_output_is_parsed():
    fields = parse_benchmark_output(open(os.path.join(OUTPUTS, "xnnpack.txt")).read())
    # The figures of the timed runs' count= line, not the warm-up's.
    assert fields["runs"] == 55 and fields["median_ms"] == pytest.approx(18.202)
    assert fields["p5_ms"] == pytest.approx(17.991) and fields["p95_ms"] == pytest.approx(19.560)
    assert fields["std_ms"] == pytest.approx(0.512) and fields["max_ms"] == pytest.approx(21.034)
    assert fields["init_ms"] == pytest.approx(63.841) and fields["first_ms"] == pytest.approx(24.512)
    assert fields["warmup_avg_ms"] == pytest.approx(18.6442) and fields["avg_ms"] == pytest.approx(18.3507)
    assert fields["memory_init_mb"] == pytest.approx(21.2773) and fields["memory_overall_mb"] == pytest.approx(29.8789)
    assert fields["peak_memory_mb"] == pytest.approx(35.6914) and fields["delegated_nodes"] == "358/358"
    assert parse_benchmark_output(open(os.path.join(OUTPUTS, "gpu_refused.txt")).read()) is None
    # Older tools: scientific notation, no percentiles, "Peak memory footprint".
    old = ("count=50 first=1249964 curr=1240143 min=1238588 max=1252566 avg=1.24027e+06 std=2565\n"
           "Inference timings in us: Init: 5579, First inference: 1357602, Warmup (avg): 1.3576e+06, "
           "Inference (avg): 1.24027e+06\nPeak memory footprint (MB): init=4.92969 overall=138.809\n")
    fields = parse_benchmark_output(old)
    assert fields["avg_ms"] == pytest.approx(1240.27) and fields["memory_overall_mb"] == pytest.approx(138.809)
    assert "median_ms" not in fields and fields["runs"] == 50


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """An ``adb`` on PATH that records its calls; returns a function reading them."""
    bin_dir, state = tmp_path / "bin", tmp_path / "adb_state"
    bin_dir.mkdir()
    state.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(os.path.join(HERE, 'fake_adb.py'))} "
                   f"\"$@\"\n")
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R58M123:device")

    def calls():
        return [json.loads(line) for line in open(state / "calls.jsonl")]

    return calls


@pytest.fixture
def device_files(tmp_path):
    """A benchmark binary and two models, one with spaces and shell characters in its path."""
    odd = tmp_path / "my models; $(touch pwned)"
    odd.mkdir()
    paths = [tmp_path / "benchmark_model", tmp_path / "fp32.tflite", odd / "int8 'q'.tflite"]
    for path in paths:
        path.write_bytes(b"\0" * 64)
    return [str(p) for p in paths]


def test_android_benchmark_runs_every_combination_without_word_splitting(fake_adb, device_files, tmp_path,
                                                                        monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ADB_GPU", "refuse")
    binary, *models = device_files
    prefix = tmp_path / "android"
    code = cli_main(["benchmark", "--android", "--benchmark-binary", binary, *models, "--threads", "1", "4",
                     "--delegates", "xnnpack,gpu", "--runs", "30", "--csv", f"{prefix}.csv",
                     "--markdown", f"{prefix}.md"])
    assert code == 2  # the GPU runs failed, and the command says so
    assert "4 of 8 runs failed" in capsys.readouterr().err
    rows = list(csv.DictReader(open(f"{prefix}.csv")))
    assert [(r["model"], r["threads"], r["delegate"]) for r in rows] == [
        (m, t, d) for m in models for d in ("xnnpack", "gpu") for t in ("1", "4")]
    for row in rows:
        if row["delegate"] == "xnnpack":
            assert row["status"] == "ok" and float(row["median_ms"]) == pytest.approx(18.202)
            assert row["device"] == "R58M123" and row["delegated_nodes"] == "358/358"
        else:
            assert row["status"].startswith("failed:") and "Failed to apply GPU delegate" in row["status"]
    assert open(f"{prefix}.md").read().count("| R58M123 |") == 8

    calls = fake_adb()
    names = remote_names(models)
    pushes = [c[3:] for c in calls if c[2:3] == ["push"]]
    assert pushes == [[binary, "/data/local/tmp/benchmark_model"]] + [
        [m, f"/data/local/tmp/{names[m]}"] for m in models]  # local paths arrive whole
    runs = [shlex.split(c[3]) for c in calls if c[2:3] == ["shell"] and "--graph" in c[3]]
    assert len(runs) == 8 and all(r[0] == "/data/local/tmp/benchmark_model" for r in runs)
    assert {r[1] for r in runs} == {f"--graph=/data/local/tmp/{names[m]}" for m in models}
    assert ["--num_threads=4", "--num_runs=30", "--warmup_runs=5", "--use_gpu=true"] in [r[2:] for r in runs]
    assert not os.path.exists(os.path.join(os.getcwd(), "pwned"))


def _quiet(line):
    """A progress callback that prints nothing."""


def test_android_benchmark_failures_are_clear_and_keep_results(fake_adb, device_files, tmp_path, monkeypatch):
    binary, *models = device_files
    with pytest.raises(AndroidBenchmarkError, match="adb is not on PATH"):
        benchmark_android(models, binary, adb="no-such-adb-here", progress=_quiet)

    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    with pytest.raises(AndroidBenchmarkError, match="no Android device"):
        benchmark_android(models, binary, progress=_quiet)
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R58M123:device,emulator-5554:device")
    with pytest.raises(AndroidBenchmarkError, match=r"several devices \(R58M123 \(device\), emulator-5554 "
                                                    r"\(device\)\): choose one with --serial"):
        benchmark_android(models, binary, progress=_quiet)
    with pytest.raises(AndroidBenchmarkError, match="no device XYZ"):
        benchmark_android(models, binary, serial="XYZ", progress=_quiet)
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R58M123:unauthorized")
    with pytest.raises(AndroidBenchmarkError, match="R58M123 is unauthorized"):
        benchmark_android(models, binary, progress=_quiet)

    # A crashed run is recorded and the rest go on; a failed push stops with what was gathered kept.
    monkeypatch.setenv("FAKE_ADB_DEVICES", "R58M123:device,emulator-5554:device")
    monkeypatch.setenv("FAKE_ADB_CRASH", "--num_threads=2")
    monkeypatch.setenv("FAKE_ADB_FAIL_PUSH", remote_names(models)[models[1]])
    out = tmp_path / "partial.csv"
    code = cli_main(["benchmark", "--android", "--serial", "R58M123", "--benchmark-binary", binary, *models,
                     "--threads", "1", "2", "--csv", str(out)])
    assert code == 2
    rows = list(csv.DictReader(open(out)))
    assert [(r["threads"], r["status"]) for r in rows] == [("1", "ok"), ("2", "failed: Segmentation fault")]
    assert all(r["model"] == models[0] for r in rows)

    missing = str(tmp_path / "nope.tflite")
    with pytest.raises(FileNotFoundError, match="nope.tflite"):
        benchmark_android([missing], binary, serial="R58M123", progress=_quiet)
