"""Benchmarking ``.tflite`` files on an Android device with TFLite's ``benchmark_model``, over adb.

The binary and the models are pushed to ``/data/local/tmp``; the tool runs once
for every model, thread count and delegate, and its output is parsed into
``BenchmarkResult``s. Every adb call is an argument list (no local shell); the
one command that runs on the device is quoted for its shell, and the models
get device names made of safe characters, so no path is split into words.
A run that crashes or that a delegate refuses is recorded with its reason and
the others go on; adb itself failing (missing, no device, a failed push) stops
the benchmark with a message, and ``on_result`` has been given every result so far.
"""

import os
import re
import shlex
import shutil
import subprocess

from .benchmark import BenchmarkResult

REMOTE_DIR = "/data/local/tmp"
REMOTE_BINARY = "benchmark_model"
DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],  # TFLite's own kernels
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}
ADB_TIMEOUT_SECONDS = 600


class AndroidBenchmarkError(RuntimeError):
    """adb is missing, no device (or several and no serial), or a push failed."""


# ---------------------------------------------------------------------------
# benchmark_model's output.
# ---------------------------------------------------------------------------

_NUMBER = r"([0-9.]+(?:e[+-]?[0-9]+)?)"
_SUMMARY = re.compile(rf"Inference timings in us: Init: {_NUMBER}, First inference: {_NUMBER}, "
                      rf"Warmup \(avg\): {_NUMBER}, Inference \(avg\): {_NUMBER}")
_STATISTICS = re.compile(r"\bcount=\d+(?: \w+=[0-9.e+-]+)+")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init={_NUMBER} overall={_NUMBER}")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUMBER}")
_DELEGATED = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate")


def parse_benchmark_output(text):
    """The figures of one ``benchmark_model`` run, as ``BenchmarkResult`` fields (ms, MB), or None.

    The tool prints a ``count=...`` line for the warm-up and one for the timed
    runs (with ``p5``, ``median`` and ``p95`` in recent versions), then the
    ``Inference timings in us`` summary and the memory lines. None when the
    summary is missing: the run did not finish.
    """
    summary = _SUMMARY.search(text)
    if not summary:
        return None
    init, first, warmup, average = (float(v) / 1e3 for v in summary.groups())
    fields = dict(init_ms=init, first_ms=first, warmup_avg_ms=warmup, avg_ms=average)
    statistics = _STATISTICS.findall(text[:summary.start()])
    if statistics:  # the last one before the summary is the timed runs'
        values = dict(pair.split("=") for pair in statistics[-1].split())
        fields["runs"] = int(values["count"])
        for key, name in (("std", "std_ms"), ("p5", "p5_ms"), ("median", "median_ms"), ("p95", "p95_ms"),
                          ("min", "min_ms"), ("max", "max_ms")):
            if key in values:
                fields[name] = float(values[key]) / 1e3
    memory = _MEMORY.search(text)
    if memory:
        fields["memory_init_mb"], fields["memory_overall_mb"] = (float(v) for v in memory.groups())
    peak = _PEAK.search(text)
    if peak:
        fields["peak_memory_mb"] = float(peak.group(1))
    delegated = _DELEGATED.findall(text)
    if delegated:
        fields["delegated_nodes"] = "/".join(delegated[-1])
    return fields


def _failure_reason(text, returncode):
    """Why a run failed, in a line: the tool's error lines, else its exit status and last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines
              if re.search(r"error|fail|abort|segmentation|fatal|not supported|cannot", line, re.IGNORECASE)]
    if errors:
        return "; ".join(dict.fromkeys(errors))[:300]
    reason = f"exit status {returncode}" if returncode else "no timings in the output"
    return reason + (f": {lines[-1][:160]}" if lines else "")


# ---------------------------------------------------------------------------
# adb.
# ---------------------------------------------------------------------------

class Adb:
    """adb with a fixed device: every call an argument list, never a local shell."""

    def __init__(self, executable="adb", serial=None):
        found = shutil.which(executable)
        if found is None:
            raise AndroidBenchmarkError(
                f"{executable}: adb is not on PATH; install Android's platform-tools (or pass its path)")
        self.executable = found
        self.serial = serial or self._only_device()

    def _call(self, arguments, serial=True):
        command = [self.executable] + (["-s", self.serial] if serial else []) + list(arguments)
        try:
            done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                  timeout=ADB_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return 124, f"adb {arguments[0]} timed out after {ADB_TIMEOUT_SECONDS} s"
        return done.returncode, done.stdout + done.stderr

    def devices(self):
        """``{serial: state}`` from ``adb devices`` (state ``device``, ``unauthorized``, ``offline``...)."""
        code, text = self._call(["devices"], serial=False)
        if code:
            raise AndroidBenchmarkError(f"adb devices failed: {text.strip()[:200]}")
        found = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith(("List of devices", "*")):
                found[parts[0]] = parts[1]
        return found

    def _only_device(self):
        devices = self.devices()
        ready = [serial for serial, state in devices.items() if state == "device"]
        if not devices:
            raise AndroidBenchmarkError("no Android device: `adb devices` lists none (connect one and enable "
                                        "USB debugging)")
        if len(devices) > 1:
            listed = ", ".join(f"{serial} ({state})" for serial, state in devices.items())
            raise AndroidBenchmarkError(f"several devices ({listed}): choose one with --serial")
        if not ready:
            serial, state = next(iter(devices.items()))
            raise AndroidBenchmarkError(f"device {serial} is {state}: accept the debugging prompt on it, or "
                                        f"reconnect it")
        return ready[0]

    def check_serial(self):
        state = self.devices().get(self.serial)
        if state is None:
            raise AndroidBenchmarkError(f"no device {self.serial}: `adb devices` does not list it")
        if state != "device":
            raise AndroidBenchmarkError(f"device {self.serial} is {state}")

    def push(self, local, remote):
        code, text = self._call(["push", os.fspath(local), remote])
        if code:
            raise AndroidBenchmarkError(f"adb push {local} -> {remote} failed: {text.strip()[-200:]}")

    def shell(self, arguments):
        """Runs ``arguments`` on the device, each quoted for its shell: ``(exit status, output)``."""
        return self._call(["shell", " ".join(shlex.quote(str(a)) for a in arguments)])


def remote_names(paths):
    """A device file name for every model: its base name in safe characters, unique."""
    names, used = {}, set()
    for path in paths:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(os.fspath(path))) or "model.tflite"
        name, index = stem, 1
        while name in used:
            index += 1
            name = f"{index}_{stem}"
        used.add(name)
        names[path] = name
    return names


def benchmark_android(models, benchmark_binary, serial=None, threads=(1,), delegates=("xnnpack",), runs=50,
                      warmup=5, adb="adb", on_result=None, progress=print):
    """Runs ``benchmark_model`` on the device for every model, thread count and delegate.

    Returns the list of ``BenchmarkResult``s; ``on_result(results so far)`` is
    called after every run, so a caller can write them as they come. A run that
    fails is a result with its reason in ``status``.
    """
    models = [os.fspath(m) for m in models]
    for path in [benchmark_binary, *models]:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    unknown = [d for d in delegates if d not in DELEGATE_FLAGS]
    if unknown:
        raise ValueError(f"unknown delegate {', '.join(unknown)}: choose from {', '.join(DELEGATE_FLAGS)}")
    device = Adb(adb, serial)
    if serial:
        device.check_serial()
    binary = f"{REMOTE_DIR}/{REMOTE_BINARY}"
    progress(f"device {device.serial}: pushing {os.path.basename(benchmark_binary)} and {len(models)} model(s)")
    device.push(benchmark_binary, binary)
    code, text = device.shell(["chmod", "755", binary])
    if code:
        raise AndroidBenchmarkError(f"cannot make {binary} executable: {text.strip()[:200]}")
    names = remote_names(models)
    results = []
    for path in models:
        remote = f"{REMOTE_DIR}/{names[path]}"
        device.push(path, remote)
        for delegate in delegates:
            for count in threads:
                progress(f"{names[path]}: {count} thread(s), {delegate}")
                code, text = device.shell([binary, f"--graph={remote}", f"--num_threads={count}",
                                           f"--num_runs={runs}", f"--warmup_runs={warmup}",
                                           *DELEGATE_FLAGS[delegate]])
                fields = parse_benchmark_output(text) if code == 0 else None
                result = BenchmarkResult(model=path, device=device.serial, threads=count, delegate=delegate)
                if fields is None:
                    result.status = "failed: " + _failure_reason(text, code)
                    progress(f"  {result.status}")
                else:
                    for key, value in fields.items():
                        setattr(result, key, value)
                results.append(result)
                if on_result is not None:
                    on_result(results)
    return results
