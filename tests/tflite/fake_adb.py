"""A stand-in for ``adb`` in the Android benchmark tests: records every call, answers as adb and the device would.

Set by environment:
- ``FAKE_ADB_STATE``: a folder for ``calls.jsonl`` (every argv, one JSON list a line) and
  ``device_files.json`` (what was pushed);
- ``FAKE_ADB_DEVICES``: ``serial:state,serial:state`` (empty: no device);
- ``FAKE_ADB_FAIL_PUSH``: pushes to a device path containing this fail (disk full);
- ``FAKE_ADB_GPU``: ``refuse`` makes the GPU delegate refuse the model (the tool's real error output);
- ``FAKE_ADB_CRASH``: a benchmark command containing this dies with a segmentation fault.

``shell`` gets one string, split the way the device's shell splits it (shlex), and
``benchmark_model`` answers with real output of the tool (tests/fixtures/benchmark_model).
"""

import json
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUTS = os.path.join(os.path.dirname(HERE), "fixtures", "benchmark_model")


def main(argv):
    state = os.environ["FAKE_ADB_STATE"]
    with open(os.path.join(state, "calls.jsonl"), "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    devices = dict(item.split(":") for item in os.environ.get("FAKE_ADB_DEVICES", "").split(",") if item)
    files_path = os.path.join(state, "device_files.json")
    files = json.load(open(files_path, encoding="utf-8")) if os.path.exists(files_path) else []

    if argv[:1] == ["devices"]:
        print("List of devices attached")
        for serial, status in devices.items():
            print(f"{serial}\t{status}")
        print()
        return 0
    if argv[:1] != ["-s"] or len(argv) < 3:
        print("adb: usage: the benchmark always names its device", file=sys.stderr)
        return 1
    serial, command, rest = argv[1], argv[2], argv[3:]
    if serial not in devices:
        print(f"adb: device '{serial}' not found", file=sys.stderr)
        return 1
    if command == "push":
        local, remote = rest
        if not os.path.isfile(local):
            print(f"adb: error: cannot stat '{local}': No such file or directory", file=sys.stderr)
            return 1
        failing = os.environ.get("FAKE_ADB_FAIL_PUSH")
        if failing and failing in remote:
            print(f"adb: error: failed to copy '{local}' to '{remote}': remote No space left on device",
                  file=sys.stderr)
            return 1
        files.append(remote)
        json.dump(files, open(files_path, "w", encoding="utf-8"))
        print(f"{local}: 1 file pushed, 0 skipped. 31.4 MB/s ({os.path.getsize(local)} bytes in 0.002s)")
        return 0
    if command == "shell":
        (line,) = rest
        words = shlex.split(line)
        if words[0] == "chmod":
            return 0 if words[-1] in files else 1
        if words[0] not in files:
            print(f"/system/bin/sh: {words[0]}: not found", file=sys.stderr)
            return 127
        graph = next(w.split("=", 1)[1] for w in words if w.startswith("--graph="))
        if graph not in files:
            print(f"ERROR: Could not open '{graph}'.\nERROR: Benchmarking failed.")
            return 1
        crash = os.environ.get("FAKE_ADB_CRASH")
        if crash and crash in line:
            print("Segmentation fault")
            return 139
        if "--use_gpu=true" in words and os.environ.get("FAKE_ADB_GPU") == "refuse":
            print(open(os.path.join(OUTPUTS, "gpu_refused.txt"), encoding="utf-8").read(), end="")
            return 1
        print(open(os.path.join(OUTPUTS, "xnnpack.txt"), encoding="utf-8").read(), end="")
        return 0
    print(f"adb: unknown command {command}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
