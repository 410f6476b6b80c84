"""Latency of ``.tflite`` files: on this host with LiteRT, and on Android with TFLite's ``benchmark_model``.

Both report in ``benchmark_model``'s terms: initialisation, first inference,
warm-up average, then average, median, p5, p95, standard deviation, min and max
of the timed runs, and memory (the footprint added by initialisation, by the
whole run, and the peak). Host figures come from the LiteRT interpreter in this
process; Android figures are parsed from the tool's own output (see ``android``).
"""

import csv
import dataclasses
import io
import os
import sys
import time

import numpy as np

from keras_mobilevitv2.files import write_json, write_text
from keras_mobilevitv2.progress import ProgressLine

HOST_DELEGATES = ("xnnpack", "cpu")


@dataclasses.dataclass
class BenchmarkResult:
    """One model at one thread count with one delegate. Times in milliseconds, memory in MB."""
    model: str
    device: str
    threads: int
    delegate: str
    status: str = "ok"  # or what went wrong, in a line
    runs: int = 0
    init_ms: float = None
    first_ms: float = None
    warmup_avg_ms: float = None
    avg_ms: float = None
    median_ms: float = None
    p5_ms: float = None
    p95_ms: float = None
    std_ms: float = None
    min_ms: float = None
    max_ms: float = None
    memory_init_mb: float = None
    memory_overall_mb: float = None
    peak_memory_mb: float = None
    delegated_nodes: str = None  # "n/m" when the tool says how much the delegate took

    @property
    def ok(self):
        return self.status == "ok"


FIELDS = [field.name for field in dataclasses.fields(BenchmarkResult)]


def summarise_times(first_ms, warmup_ms, run_ms):
    """The statistics ``benchmark_model`` prints, from per-invoke milliseconds."""
    runs = np.asarray(run_ms, dtype=np.float64)
    return dict(runs=len(runs), first_ms=float(first_ms),
                warmup_avg_ms=float(np.mean(warmup_ms)) if len(warmup_ms) else float(first_ms),
                avg_ms=float(runs.mean()), median_ms=float(np.median(runs)),
                p5_ms=float(np.percentile(runs, 5)), p95_ms=float(np.percentile(runs, 95)),
                std_ms=float(runs.std()), min_ms=float(runs.min()), max_ms=float(runs.max()))


# ---------------------------------------------------------------------------
# Host: the LiteRT interpreter in this process.
# ---------------------------------------------------------------------------

def _memory_mb(field):
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process in MB; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak_memory():
    """Makes ``VmHWM`` start again from the current resident size (Linux 4.0+); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _example_input(detail, facts, rng):
    """A random image in the range the model takes (RGB [0, 255] through the file's scaling and quantization)."""
    from .runtime import quantize_input

    image = rng.uniform(0, 255, detail["shape"]).astype(np.float32)
    if facts:
        image *= facts.get("input_max", 255.0) / 255.0
    return quantize_input(image, detail)


def benchmark_host(path, threads=1, runs=50, warmup=5, delegate="xnnpack", seed=0):
    """Times one ``.tflite`` file with LiteRT in this process: a ``BenchmarkResult``.

    ``delegate``: ``xnnpack`` (LiteRT's default CPU path) or ``cpu`` (TFLite's
    reference kernels, no delegate). Memory: what initialisation added to the
    resident size, and the peak above the starting size over the whole run.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file")
    if delegate not in HOST_DELEGATES:
        raise ValueError(f"on the host the delegate is one of {', '.join(HOST_DELEGATES)}, got {delegate!r}")
    if runs < 1 or warmup < 0 or threads < 1:
        raise ValueError("runs and threads must be at least 1 and warmup at least 0")
    peak_tracked = _reset_peak_memory()
    start_mb = _memory_mb("VmRSS")
    try:
        invoke, init_ms = _loaded_runner(path, threads, np.random.default_rng(seed), delegate)
    except Exception as error:  # noqa: BLE001 - reported as the file's problem, in a line
        raise ValueError(f"{path}: LiteRT cannot load it ({str(error).splitlines()[0][:200]})") from None
    init_mb = _memory_mb("VmRSS")

    def timed():
        begin = time.perf_counter()
        invoke()
        return (time.perf_counter() - begin) * 1e3

    first_ms = timed()
    warmup_ms = [timed() for _ in range(warmup)]
    run_ms = [timed() for _ in range(runs)]
    result = BenchmarkResult(model=path, device="host", threads=threads, delegate=delegate, init_ms=init_ms,
                             **summarise_times(first_ms, warmup_ms, run_ms))
    if start_mb is not None:
        result.memory_init_mb = init_mb - start_mb
        result.memory_overall_mb = _memory_mb("VmRSS") - start_mb
        if peak_tracked:
            result.peak_memory_mb = _memory_mb("VmHWM") - start_mb
    return result


def benchmark_host_models(paths, threads=(1,), runs=50, warmup=5, delegates=("xnnpack",), progress=True):
    """Every model at every thread count and delegate on this host: a list of ``BenchmarkResult``."""
    results = []
    for path in paths:
        for delegate in delegates:
            for count in threads:
                if progress:
                    print(f"benchmarking {os.path.basename(os.fspath(path))}: {count} thread(s), {delegate}, "
                          f"{warmup} warm-up + {runs} runs", file=sys.stderr, flush=True)
                results.append(benchmark_host(path, threads=count, runs=runs, warmup=warmup, delegate=delegate))
    return results


def _loaded_runner(path, threads, rng, delegate="xnnpack"):
    """``(invoke, init_ms)`` for a ``.tflite`` file (LiteRT; ``delegate`` xnnpack or cpu) or an ``.onnx`` peer
    (ONNX Runtime), its inputs set to a random image. ``init_ms``: creating the interpreter (or session) and
    allocating its tensors, as ``benchmark_model`` counts initialisation."""
    path = os.fspath(path)
    start = time.perf_counter()
    if path.endswith(".onnx"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        init_ms = (time.perf_counter() - start) * 1e3
        feed = {i.name: rng.uniform(0, 1, i.shape).astype(np.float32) for i in session.get_inputs()}
        return (lambda: session.run(None, feed)), init_ms
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .metadata import read_metadata

    resolver = OpResolverType.AUTO if delegate == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    init_ms = (time.perf_counter() - start) * 1e3
    try:
        facts = read_metadata(path)
    except Exception:  # noqa: BLE001 - another tool's file: inputs in [0, 255]
        facts = None
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _example_input(detail, facts, rng))
    return interpreter.invoke, init_ms


def benchmark_interleaved(models, rounds=20, runs=5, warmup=10, progress=True):
    """Times several model files in turns: ``{name: BenchmarkResult}``.

    ``models``: ``{name: (source, threads)}``, the source a ``.tflite`` file (LiteRT,
    XNNPACK), an ``.onnx`` peer (ONNX Runtime), or a peer running in another process:
    an object with ``path``, ``delegate`` and ``load(threads, rng)`` giving ``(invoke,
    init_ms)``, whose ``invoke()`` runs the model once and returns the milliseconds
    it measured there. Every round invokes each model ``runs`` times, so a slow
    spell of a shared machine hits all of them alike: compare the medians of one
    call, not figures of separate runs.
    """
    rng = np.random.default_rng(0)
    models = {name: (source if hasattr(source, "load") else _HostFile(source), threads)
              for name, (source, threads) in models.items()}
    runners, first, init = {}, {}, {}
    for name, (source, threads) in models.items():
        runners[name], init[name] = source.load(threads, rng)
        first[name] = _timed(runners[name])
        for _ in range(warmup):
            runners[name]()
    times = {name: [] for name in models}
    shown = ProgressLine(rounds, progress, every=5 / rounds)  # in a log: a line every 5 rounds and the last
    for round_index in range(rounds):
        for name, invoke in runners.items():
            for _ in range(runs):
                times[name].append(_timed(invoke))
        shown.update(round_index + 1, f"timing {len(models)} models in turns: round {round_index + 1}/{rounds}")
    shown.close()
    return {name: BenchmarkResult(model=os.fspath(source.path), device="host", threads=threads,
                                  delegate=source.delegate, init_ms=init[name],
                                  **summarise_times(first[name], [], times[name]))
            for name, (source, threads) in models.items()}


class _HostFile:
    """A ``.tflite`` or ``.onnx`` file timed in this process, as ``benchmark_interleaved`` takes any source."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.delegate = "onnxruntime" if self.path.endswith(".onnx") else "xnnpack"

    def load(self, threads, rng):
        return _loaded_runner(self.path, threads, rng)


def _timed(invoke):
    """Milliseconds of one call: as the runner measured it in its own process, or here."""
    start = time.perf_counter()
    reported = invoke()
    return reported if isinstance(reported, float) else (time.perf_counter() - start) * 1e3


# ---------------------------------------------------------------------------
# Reports.
# ---------------------------------------------------------------------------

def _cell(value, digits=2):
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(results):
    """A Markdown table of results, one row a run (times in ms, memory in MB)."""
    lines = ["| model | device | threads | delegate | init ms | first ms | warm-up ms | avg ms | median ms "
             "| p5 ms | p95 ms | std ms | peak MB | status |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        lines.append(f"| {os.path.basename(r.model)} | {r.device} | {r.threads} | {r.delegate} "
                     f"| {_cell(r.init_ms, 1)} | {_cell(r.first_ms)} | {_cell(r.warmup_avg_ms)} | {_cell(r.avg_ms)} "
                     f"| {_cell(r.median_ms)} | {_cell(r.p5_ms)} | {_cell(r.p95_ms)} | {_cell(r.std_ms)} "
                     f"| {_cell(r.peak_memory_mb if r.peak_memory_mb is not None else r.memory_overall_mb, 1)} "
                     f"| {r.status} |")
    return "\n".join(lines) + "\n"


def write_results(results, json_path=None, csv_path=None, markdown_path=None):
    """Writes results as JSON, CSV and / or Markdown, each file atomically (called again as results come in)."""
    if json_path:
        write_json(json_path, [dataclasses.asdict(r) for r in results])
    if csv_path:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=FIELDS)
        writer.writeheader()
        for r in results:
            writer.writerow(dataclasses.asdict(r))
        write_text(csv_path, text.getvalue())
    if markdown_path:
        write_text(markdown_path, markdown_table(results))
