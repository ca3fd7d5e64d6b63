"""tinygen's AOT runtime next to TFLite Micro, side by side in one run, in QEMU's mps2-an386
under `-icount shift=0`: arena, stack used (the firmware's painted-stack report), flash
(arm-none-eabi-size) and instructions per inference.

    python tests/benchmarks/bench_aot.py [../shared/models] [--vectors 1]

TFLM columns need TFLM_ROOT (its first build takes minutes); without it only AOT is measured.
Instruction counts are deterministic under -icount, so one run each is enough; they are
QEMU's, not a real chip's cycles. Prints a table and the ratios; figures, not assertions."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MODELS = ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "kws_ref_model.tflite", "ad01_int8.tflite"]


def measure(model: Path, runtime: str, vectors: int) -> dict | None:
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "run", "--board", "mps2-an386", "--model", str(model),
                        "--runtime", runtime, "--vectors", str(vectors), "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  {model.name} {runtime}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
        return None
    return json.loads(r.stdout)


def _or_dash(n: int | None) -> str:
    # TFLM's firmware does not paint its stack: no figure
    return "-" if n is None else f"{n:,}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="?", default=str(Path(__file__).resolve().parents[3] / "shared" / "models"))
    ap.add_argument("--vectors", type=int, default=1)
    args = ap.parse_args()
    runtimes = ["aot"] + (["tflm"] if os.environ.get("TFLM_ROOT") else [])
    rows = []
    for name in MODELS:
        path = Path(args.models) / name
        rows.append((name, {rt: measure(path, rt, args.vectors) for rt in runtimes}))
    head = (f"{'model':32} {'runtime':8} {'mism':>5} {'arena B':>9} {'stack B':>8} {'flash B':>9} "
            f"{'instructions':>13}")
    print(head)
    print("-" * len(head))
    for name, res in rows:
        for rt, j in res.items():
            if j is None:
                continue
            print(f"{name:32} {rt:8} {j['mismatches']:>5} {j['arena_bytes']:>9,} {_or_dash(j.get('stack_used_bytes')):>8} "
                  f"{j['flash_bytes']:>9,} "
                  f"{j['instructions_per_inference']:>13,}")
        a, t = res.get("aot"), res.get("tflm")
        if a and t:
            print(f"{'':32} {'aot/tflm':8} {'':>5} {a['arena_bytes'] / t['arena_bytes']:>9.2f} {'':>8} "
                  f"{a['flash_bytes'] / t['flash_bytes']:>9.2f} "
                  f"{a['instructions_per_inference'] / t['instructions_per_inference']:>13.3f}")
    if "tflm" not in runtimes:
        print("(set TFLM_ROOT to a tflite-micro checkout to measure TFLM with CMSIS-NN next to it)")


if __name__ == "__main__":
    main()
