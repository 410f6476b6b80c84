#!/usr/bin/env bash
# Compiles the app's JVM module (vision-core: metadata, preprocessing, postprocessing, latency) and
# runs its JUnit tests, golden tests against this package's Python pipeline included. Needs no Android
# SDK or Gradle: a JDK and Debian's junit4, installed here when missing (as root).
#   bash android_demo/test-jvm.sh            (PYTHON=... picks the Python with keras_mobilevitv2)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module="$here/vision-core"
python="${PYTHON:-python3}"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

missing=()
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/junit4.jar ] || missing+=(junit4)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-jvm.sh: needs ${missing[*]} (Debian packages); install them or run as root" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
classpath=/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar

"$python" "$module/src/test/make_golden.py" "$build/golden"
find "$module/src/main/java" -name '*.java' > "$build/main.txt"
javac -Xlint:all -Werror -d "$build/classes" @"$build/main.txt"
find "$module/src/test/java" -name '*.java' > "$build/test.txt"
javac -Xlint:-unchecked -d "$build/test-classes" -cp "$build/classes:$classpath" @"$build/test.txt"
tests=$(cd "$module/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
java -Djava.awt.headless=true -Dgolden.dir="$build/golden" -cp "$build/classes:$build/test-classes:$classpath" \
  org.junit.runner.JUnitCore $tests
