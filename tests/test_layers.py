"""Layer-by-layer timing of both runtimes in the same QEMU: TFLM's per-operator ticks (its profiler
interface, with the one TFLM file that carries the hook built for it) beside AOT's per-kernel ticks,
so that `tinygen run --compare` shows where tinygen's kernels are slower (issue #17)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import needs
from test_cli import run as cli

TFLM_ROOT = os.environ.get("TFLM_ROOT")

pytestmark = [needs("arm-none-eabi-gcc"), needs("qemu-system-arm"),
              pytest.mark.skipif(not TFLM_ROOT, reason="TFLM_ROOT is not set: TFLM's per-operator ticks need TFLM "
                                                       "firmware, built against a tflite-micro checkout")]


def test_compare_times_every_operator_under_both_runtimes(shared_models, tmp_path):
    r = cli("run", "--board", "mps2-an386", "--model", shared_models / "kws_ref_model.tflite", "--vectors", "2",
            "--compare", "--out", tmp_path / "kws", "--json")
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert c["aot"]["mismatches"] == 0 and c["tflm"]["mismatches"] == 0
    ops = [l["op"] for l in c["layers"]]
    assert ops[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"] and ops[-1] == "SOFTMAX" and len(ops) == 13
    for runtime in ("aot", "tflm"):
        total = c[runtime]["ticks_per_inference"]
        per_layer = sum(l[f"{runtime}_ticks"] for l in c["layers"])
        # the layers are the inference, less the calls between them
        assert 0.97 * total <= per_layer <= total, (runtime, per_layer, total)
    assert all(l["tflm_ticks"] > 0 for l in c["layers"])
    # the ratio is measured, not assumed: it is whatever the two firmwares took
    assert c["ratio"] == round(c["aot"]["ticks_per_inference"] / c["tflm"]["ticks_per_inference"], 3)
    # TFLM's release library stays as it is: only the profiled build compiles the graph file
    assert (tmp_path / "kws" / "tflm" / "build" / "tflm" / "micro_interpreter_graph.o").exists()


def test_tflm_layers_alone(shared_models, tmp_path):
    r = cli("run", "--board", "mps2-an386", "--runtime", "tflm", "--layers", "--model",
            shared_models / "ad01_int8.tflite", "--vectors", "1", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert [l["op"] for l in j["layers"]] == ["FULLY_CONNECTED"] * 10
    assert sum(l["ticks"] for l in j["layers"]) <= j["ticks_per_inference"]
