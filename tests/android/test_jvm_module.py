"""The Android app's JVM module (android_demo/vision-core), compiled and tested with its own JUnit tests.

Its golden tests compare its input tensors, facts, top-k and latency figures
with this package's Python pipeline (android_demo/vision-core/src/test/make_golden.py).
"""

import glob
import os
import re
import subprocess
import sys

from conftest import ROOT


def test_jvm_module_passes_its_junit_tests_against_the_python_pipeline():
    script = os.path.join(ROOT, "android_demo", "test-jvm.sh")
    done = subprocess.run(["bash", script], capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable},
                          timeout=900)
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    passed = re.search(r"^OK \((\d+) tests?\)$", done.stdout, re.MULTILINE)
    # Every test in the module's sources ran (JUnitCore is given the classes named *Test), the golden ones included.
    sources = glob.glob(os.path.join(ROOT, "android_demo", "vision-core", "src", "test", "java", "**", "*.java"),
                        recursive=True)
    written = sum(len(re.findall(r"^\s*@Test\b", open(path).read(), re.MULTILINE)) for path in sources)
    assert passed and int(passed.group(1)) == written, (passed and passed.group(0), written)
