"""Mutated .tflite files against a tinygen (this checkout's, or another's on PYTHONPATH): counts
per mutation family and outcome, in this process, through the CLI, and against the
tflite-micro interpreter. The cases are tests/test_fuzz_models.py's, with the same seed.

    .venv/bin/python tests/benchmarks/bench_fuzz.py [--cases 3000] [--cli 2] [--run 1] [--oracle 20]
    PYTHONPATH=/tmp/old .venv/bin/python tests/benchmarks/bench_fuzz.py      # e.g. `git archive HEAD tinygen
                                                                             # boards templates firmware examples`
    .venv/bin/python tests/benchmarks/bench_fuzz.py --mobilenet   # untrained MobileNetV2 and V1 through build

In this process: parse(), then the arena replay and the AOT compiler (every case: what comes
out, a ModelError, another typed error, or an untyped exception, a traceback in the CLI).
Through the CLI: `fit --board sparkfun-edge` and `run --board host --runtime aot` in
subprocesses (exit status, traceback, signal). Against TFLM: the CLI's `fit` verdict beside
the interpreter's (allocate and invoke once, in a child process)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import test_fuzz_models as F  # noqa: E402
import tinygen  # noqa: E402

ROOT = Path(tinygen.__file__).resolve().parents[1]     # the tinygen under test


def in_process(cases: list[F.Case]) -> Counter:
    from tinygen import aot
    from tinygen.errors import ModelError, TinygenError
    from tinygen.model.graph import parse
    from tinygen.tflm.arena import Target, plan_arena

    counts: Counter = Counter()
    for c in cases:
        stage = "parse"
        try:
            g = parse(c.data, c.base)
            stage = "arena"
            plan_arena(g, Target())
            stage = "aot"
            aot.compile(g, c.data)
            outcome = "accepted"
        except ModelError:
            outcome = "ModelError" + ("" if stage == "parse" else f" in {stage}")
        except TinygenError as e:
            outcome = f"{type(e).__name__} in {stage}"
        except Exception as e:  # noqa: BLE001 - what is counted: untyped errors
            outcome = f"UNTYPED {type(e).__name__} in {stage}"
        counts[(c.family, outcome)] += 1
    return counts


def cli(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tinygen.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=F.CASES)
    ap.add_argument("--cli", type=int, default=2, help="fit cases per family")
    ap.add_argument("--run", type=int, default=1, help="run --board host cases per family")
    ap.add_argument("--mobilenet", action="store_true", help="untrained MobileNetV2/V1 .h5 through `tinygen build`")
    a = ap.parse_args()
    print(f"tinygen from {ROOT}; seed {F.SEED}")
    if a.mobilenet:
        return mobilenet()

    t = time.time()
    cases = F.generate(a.cases)
    print(f"{len(cases)} cases generated in {time.time() - t:.1f} s")
    t = time.time()
    print(F._table(in_process(cases), f"\nin this process: parse, arena replay, aot.compile ({time.time() - t:.0f} s)"))

    tmp = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    jobs = []
    for k, c in enumerate(F._sample(cases, a.cli)):
        (tmp / f"{k}.tflite").write_bytes(c.data)
        jobs.append((c, "fit", ["fit", "--board", "sparkfun-edge", "--model", str(tmp / f"{k}.tflite")]))
    for k, c in enumerate(F._sample(cases, a.run)):
        (tmp / f"r{k}.tflite").write_bytes(c.data)
        jobs.append((c, "run", ["run", "--board", "host", "--runtime", "aot", "--model", str(tmp / f"r{k}.tflite")]))
    t = time.time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda j: cli(j[2]), jobs))
    fit_counts, run_counts, agree = Counter(), Counter(), Counter()
    oracle = F.Oracle()
    try:
        for (c, cmd, _), r in zip(jobs, results):
            outcome = F.cli_outcome(r)
            (fit_counts if cmd == "fit" else run_counts)[(c.family, outcome)] += 1
            if cmd == "fit":
                ours = {"exit 0": "fits", "exit 2": "fits not", "exit 1": "refuses"}.get(outcome, outcome)
                theirs, _ = oracle.verdict(c.data)
                agree[(c.family, f"{ours} / TFLM {theirs}")] += 1
    finally:
        oracle.close()
    print(F._table(fit_counts, f"\n`tinygen fit` ({time.time() - t:.0f} s for fit and run together)"))
    print(F._table(run_counts, "\n`tinygen run --board host --runtime aot`"))
    print(F._table(agree, "\n`tinygen fit`'s verdict beside the tflite-micro interpreter's"))


def mobilenet() -> None:
    """The report's case: untrained nets as .h5 through `tinygen build` (two minutes each)."""
    code = ("import os, sys; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tf_keras as k; "
            "k.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=2).save(sys.argv[1]); "
            "k.applications.MobileNet(alpha=0.25, input_shape=(96, 96, 3), weights=None, classes=2).save(sys.argv[2])")
    tmp = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    v2, v1 = tmp / "mobilenet_v2.h5", tmp / "mobilenet_v1.h5"
    subprocess.run([sys.executable, "-c", code, str(v2), str(v1)], check=True, capture_output=True)
    for path in (v2, v1):
        t = time.time()
        r = cli(["build", "--board", "sparkfun-edge", "--model", str(path), "--out", str(tmp / path.stem)])
        print(f"{path.name}: {F.cli_outcome(r)} in {time.time() - t:.0f} s")
        print("  " + "\n  ".join(r.stderr.strip().splitlines()[-3:]))


if __name__ == "__main__":
    main()
