"""tinygen's ahead-of-time runtime: its C, compiled here, against the real interpreters.

Every output of the host build is compared byte for byte with the tflite-micro interpreter
(the runtime the AOT C replaces) and with TFLite's interpreter running its reference kernels.
Those two disagree with each other on FULLY_CONNECTED (TFLite 2.21 requantizes it with one
rounding, TFLM with two); the AOT C follows TFLM, and the tests pin that down.
"""

from __future__ import annotations

import json
import zlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import needs
from test_cli import assert_one_sentence_error, run as cli

from tinygen import aot
from tinygen.aot import host as hostrun
from tinygen.model import graph as analyze
from tinygen.resources import resource_dir

SAMPLES = 200


def _tflm(model_bytes: bytes, xs) -> np.ndarray:
    """Output 0 of the tflite-micro interpreter, for an array of inputs or one array per model input."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model_bytes, arena_size=1 << 21)
    batches = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    outs = []
    for row in zip(*batches):
        for k, x in enumerate(row):
            it.set_input(x, k)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return np.stack(outs)


def _inputs(hm: hostrun.HostModel, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if hm.input_dtype == np.float32:
        return (rng.random((n,) + hm.input_shape, dtype=np.float32) * 1.4 - 0.2).astype(np.float32)
    return rng.integers(-128, 128, size=(n,) + hm.input_shape, dtype=np.int8)


def _differ(a: np.ndarray, b: np.ndarray) -> int:
    return int((a != b.reshape(a.shape)).reshape(len(a), -1).any(axis=1).sum())


@pytest.fixture(scope="session")
def aot_models(tiny_models) -> dict[str, bytes]:
    from tinymodels import aot_catalogue

    models = {n: b for n, b in tiny_models.items() if n != "tanh"}
    models.update(aot_catalogue())
    return models


@needs("cc")
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-emulated"])
def test_every_kernel_is_bit_exact_with_tflite_micro_and_tflite(aot_models, dsp, tmp_path):
    """dsp: the kernels' Cortex-M DSP paths (SMLAD etc.), their instructions emulated in C."""
    from tinygen.model.evaluate import tflite_reference

    ops_seen: set[str] = set()
    for name, model in aot_models.items():
        hm, compiled = hostrun.compile_model(model, name, tmp_path / name, emulate_dsp=dsp)
        xs = _inputs(hm, SAMPLES)
        out, _ = hm.run(xs)
        micro = _tflm(model, xs)
        assert _differ(out, micro) == 0, f"{name}: AOT output differs from tflite-micro's"
        lite = tflite_reference(model, xs)
        ops = set(compiled.program.graph.ops)
        ops_seen |= ops
        if not ops & {"FULLY_CONNECTED", "MUL"}:
            assert _differ(out, lite) == 0, f"{name}: AOT output differs from TFLite's reference kernels"
        else:
            # TFLite and TFLM may disagree here (FC's rounding, MUL's multiplier in float; which
            # outputs depends on the weights, seeded by TINYGEN_SEED): --match tflite is TFLite's.
            hm, _ = hostrun.compile_model(model, name, tmp_path / f"{name}-tflite", match="tflite", emulate_dsp=dsp)
            assert _differ(hm.run(xs)[0], lite) == 0, f"{name}: AOT --match tflite differs from TFLite's reference kernels"
    assert ops_seen >= set(aot.KERNELS) - {"PADV2", "SQUEEZE", "EXPAND_DIMS"}


@needs("cc")
@pytest.mark.parametrize("name", ["vww_96_int8", "kws_ref_model", "pretrainedResnet_quant", "ad01_int8"])
def test_shared_models_are_bit_exact_on_the_host(shared_models, name, tmp_path):
    from tinygen.model.evaluate import tflite_reference

    model = (shared_models / f"{name}.tflite").read_bytes()
    hm, _ = hostrun.compile_model(model, name, tmp_path)
    xs = _inputs(hm, 40, seed=7)
    out, _ = hm.run(xs)
    micro = _tflm(model, xs)
    assert _differ(out, micro) == 0
    hm, _ = hostrun.compile_model(model, name, tmp_path / "dsp", emulate_dsp=True)  # the Cortex-M DSP paths
    assert _differ(hm.run(xs[:10])[0], micro[:10]) == 0
    # every shared model ends in FULLY_CONNECTED, where TFLite 2.21 rounds once and TFLM twice
    lite = tflite_reference(model, xs).reshape(out.shape)
    assert np.array_equal(out != lite, micro != lite)
    # --match tflite: TFLite's arithmetic instead, exactly
    hm, _ = hostrun.compile_model(model, name, tmp_path / "tflite", match="tflite")
    out, _ = hm.run(xs)
    assert _differ(out, lite) == 0


@needs("cc")
@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                                "ADD", "SUB", "MUL", "SOFTMAX", "LOGISTIC", "MEAN", "PAD", "CONCATENATION",
                                "QUANTIZE"])
def test_random_single_op_models_are_bit_exact(op, tmp_path):
    """Models written with the schema directly: random shapes, strides, padding, dilation,
    activations, and quantization no converter picks (scales from 2^-9 to 2, multipliers above
    one, any zero point), with one or two model inputs."""
    from tflite_builder import random_model

    from tinygen.model.evaluate import tflite_reference

    for seed in range(8):
        rng = np.random.default_rng([zlib.crc32(op.encode()), seed])
        model = random_model(op, rng)
        hm, _ = hostrun.compile_model(model, op, tmp_path / str(seed))
        xs = [rng.integers(-128, 128, size=(20,) + shape, dtype=np.int8) for _, shape in hm.inputs]
        out, _ = hm.run(xs)
        micro = _tflm(model, xs)
        assert _differ(out, micro) == 0, f"{op}, seed {seed}"
        # the Cortex-M DSP paths, their instructions emulated in C
        hm, _ = hostrun.compile_model(model, op, tmp_path / f"{seed}-dsp", emulate_dsp=True)
        assert _differ(hm.run(xs)[0], micro) == 0, f"{op}, seed {seed}, DSP paths"
        if op in ("FULLY_CONNECTED", "MUL"):  # where TFLite's arithmetic differs: --match tflite
            hm, _ = hostrun.compile_model(model, op, tmp_path / f"{seed}-tflite", match="tflite")
            out, _ = hm.run(xs)
            assert _differ(out, tflite_reference(model, xs)) == 0, f"{op}, seed {seed}, --match tflite"


@needs("cc")
@pytest.mark.parametrize("op, scales, zero_points, tflm_vs_tflite", [
    # where a float and a double multiplier differ: TFLM's SUB and both interpreters' SUB take
    # double; TFLite's MUL takes float, TFLM's double (found by search over random scales)
    ("SUB", (0.03221336007118225, 0.20391826331615448, 0.11664064228534698), (-14, 17, 7), 0),
    ("MUL", (0.020985819399356842, 0.04829384386539459, 0.008214187808334827), (11, -5, -4), 16),
])
def test_binary_ops_on_every_input_pair(op, scales, zero_points, tflm_vs_tflite, tmp_path):
    """The op over all 65,536 int8 pairs (broadcast): AOT --match tflm equals tflite-micro and
    --match tflite equals TFLite, including the pairs where the two interpreters disagree."""
    from tflite_builder import OneOp

    from tinygen.model.evaluate import tflite_reference

    m = OneOp()
    a = m.tensor([1, 256, 1, 1], scale=scales[0], zero_point=zero_points[0])
    b = m.tensor([1, 1, 256, 1], scale=scales[1], zero_point=zero_points[1])
    y = m.tensor([1, 256, 256, 1], scale=scales[2], zero_point=zero_points[2])
    model = m.model(op, [a, b], [y], fusedActivationFunction=0)
    values = np.arange(-128, 128, dtype=np.int8)
    xs = [values.reshape(1, 1, 256, 1, 1), values.reshape(1, 1, 1, 256, 1)]
    micro, lite = _tflm(model, xs).reshape(-1), tflite_reference(model, xs).reshape(-1)
    assert int((micro != lite).sum()) == tflm_vs_tflite
    for match, reference in (("tflm", micro), ("tflite", lite)):
        hm, _ = hostrun.compile_model(model, op, tmp_path / match, match=match)
        assert np.array_equal(hm.run(xs)[0].reshape(-1), reference), match


def test_an_op_without_a_kernel_is_named(tiny_models):
    model = tiny_models["tanh"]
    with pytest.raises(aot.AotError, match=r"TANH .*--runtime tflm"):
        aot.lower(analyze.parse(model), model)


def test_cli_names_the_missing_op(tiny_models, tmp_path):
    path = tmp_path / "tanh.tflite"
    path.write_bytes(tiny_models["tanh"])
    line = assert_one_sentence_error(cli("build", "--board", "mps2-an386", "--model", path, "--runtime", "aot",
                                         "--out", tmp_path / "out"))
    assert "TANH" in line and "--runtime tflm" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["vww_96_int8", "kws_ref_model", "pretrainedResnet_quant", "ad01_int8"])
def test_the_planned_arena_is_sound_and_smaller_than_tflms(shared_models, name):
    from tinygen.tflm.arena import Target, plan_arena

    model = (shared_models / f"{name}.tflite").read_bytes()
    graph = analyze.parse(model, name)
    program = aot.lower(graph, model)
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    tflm = plan_arena(graph, Target("arm", "cmsis-nn", True))
    # TFLM's greedy planner is one of the orders tried; in-place ops only shrink it
    assert arena.size <= tflm.head_bytes
    assert arena.size < tflm.used_bytes


def test_check_plan_catches_an_overlap(shared_models):
    model = (shared_models / "kws_ref_model.tflite").read_bytes()
    program = aot.lower(analyze.parse(model), model)
    arena = aot.plan(program)
    broken = aot.MemoryPlan({t: 0 for t in arena.offsets}, arena.size, [], "all at 0", {t: t for t in arena.offsets})
    with pytest.raises(aot.AotError, match="overlaps"):
        aot.check_plan(program, broken)


def test_quantize_multiplier_matches_tflite():
    # values checked against TFLite's QuantizeMultiplier: frexp, round half away from zero
    assert aot.quantize_multiplier(0.5) == (1 << 30, 0)
    assert aot.quantize_multiplier(1.0) == (1 << 30, 1)
    assert aot.quantize_multiplier(0.0) == (0, 0)
    q, s = aot.quantize_multiplier(0.0003)
    assert s == -11 and abs(q / 2**31 * 2**s - 0.0003) < 1e-12
    # a mantissa that rounds up to 2^31 moves to the next power of two
    assert aot.quantize_multiplier(1 - 2**-40) == (1 << 30, 1)


def test_host_run_json(shared_models):
    r = cli("run", "--board", "host", "--model", shared_models / "ad01_int8.tflite", "--runtime", "aot",
            "--vectors", "5", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    for key in ("board", "runtime", "vectors", "mismatches", "arena_bytes", "flash_bytes", "ticks_per_inference"):
        assert key in j
    assert j["board"] == "host" and j["runtime"] == "aot" and j["vectors"] == 5 and j["mismatches"] == 0
    assert j["reference"] == "tflite-micro"
    r = cli("run", "--board", "host", "--model", shared_models / "ad01_int8.tflite", "--match", "tflite",
            "--vectors", "5", "--json")
    j = json.loads(r.stdout)
    assert r.returncode == 0 and j["reference"] == "tflite" and j["mismatches"] == 0


def test_match_needs_the_aot_runtime(shared_models):
    line = assert_one_sentence_error(cli("build", "--board", "mps2-an386", "--model", shared_models / "ad01_int8.tflite",
                                         "--match", "tflite", "--no-project"))
    assert "--runtime aot" in line


def test_fit_knows_the_aot_runtime(shared_models):
    r = cli("fit", "--board", "sparkfun-edge", "--model", shared_models / "vww_96_int8.tflite", "--runtime", "aot", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    tflm = json.loads(cli("fit", "--board", "sparkfun-edge", "--model", shared_models / "vww_96_int8.tflite", "--json").stdout)
    assert j["runtime"] == "aot" and tflm["runtime"] == "tflm"
    assert j["sram"]["arena_bytes"] < tflm["sram"]["arena_bytes"]
    assert j["flash"]["total_bytes"] < tflm["flash"]["total_bytes"]
    # the planner runs VWW's convolutions over their inputs, some of them backwards (last pixel first),
    # and pairs of them as rings (tg_conv_ring: the first's output a window of rows on the stack); no
    # LUT weights (five pointwise layers hold at most 32 values per channel: 5-bit indices, which
    # aot/lut.py stores only when asked), but its last seven pointwise layers are 64-99% exact zeros
    # as trained: aot/sparse.py stores them without (tg_sparse_conv2d_1x1)
    assert j["aot"]["kernels"] == sorted(["tg_conv2d", "tg_conv2d_1x1", "tg_conv2d_1x1_backwards", "tg_conv_ring",
                                          "tg_depthwise_conv2d", "tg_depthwise_conv2d_backwards",
                                          "tg_average_pool2d", "tg_fully_connected", "tg_softmax",
                                          "tg_sparse_conv2d_1x1"])
    assert sorted(set(j["aot"]["in_place_forms"].values())) == ["element-wise", "ring streamed", "streamed",
                                                                "streamed backwards"]


def test_aot_project_for_the_bundled_example(tmp_path):
    out = tmp_path / "edge"
    r = cli("build", "--board", "sparkfun-edge", "--runtime", "aot", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"aot/tg_model.c", "aot/tg_kernels.h", "src/main.c", "Makefile", "CMakeLists.txt"} <= set(files)
    assert not any(f.endswith(".cc") for f in files)           # plain C: no TFLM, no C++
    head = (out / "aot" / "tg_model.c").read_text().splitlines()[:2]
    assert "tinygen" in head[0] and "sha256" in head[1]


@needs("arm-none-eabi-gcc")
@pytest.mark.parametrize("core, dsp", [("cortex-m4", True), ("cortex-m0plus", False)])
def test_the_dsp_paths_are_what_a_cortex_m_build_compiles(core, dsp, tmp_path):
    """The host tests check the DSP paths through TG_EMULATE_DSP; this checks that an M4
    build takes them (SMLAD in the object) and an M0+ build, which has no DSP, does not."""
    fw = resource_dir("firmware") / aot.KERNEL_DIR
    obj = tmp_path / "tg_conv.o"
    subprocess.run(["arm-none-eabi-gcc", f"-mcpu={core}", "-mthumb", "-O2", "-std=c99", f"-I{fw}", "-c",
                    fw / "tg_conv.c", "-o", obj], check=True)
    text = subprocess.run(["arm-none-eabi-objdump", "-d", obj], capture_output=True, text=True, check=True).stdout
    assert ("smlad" in text and "sxtb16" in text) == dsp


@needs("arm-none-eabi-gcc")
def test_kernel_size_table_is_current():
    from tinygen.aot import size as aot_size

    assert aot_size.measure("cortex-m4") == aot_size.table()["cores"]["cortex-m4"]


@pytest.fixture(scope="module")
def qemu_instructions_per_tick(tmp_path_factory) -> float:
    """How many instructions QEMU (-icount shift=0) runs per tick of the mps2 port's counter,
    counted with a loop of known length (tests/firmware/insn_loop.c), not from the port's clock."""
    from tinygen.boards import load_board
    from tinygen.device import qemu
    from tinygen.device.protocol import parse_line

    fw = resource_dir("firmware")
    elf = tmp_path_factory.mktemp("insn-loop") / "loop.elf"
    sources = [fw / "boards/mps2/startup.c", fw / "boards/mps2/board.c", fw / "common/syscalls.c",
               fw / "common/harness.c", Path(__file__).parent / "firmware" / "insn_loop.c"]
    subprocess.run(["arm-none-eabi-gcc", *load_board("mps2-an386").cflags, "-O1", "-Wall", "-Werror",
                    f"-I{fw / 'include'}", f"-I{fw / 'common'}", "-T", fw / "boards/mps2/mps2.ld",
                    "--specs=nano.specs", "-nostartfiles", *sources, "-o", elf], check=True)
    run = qemu.run(elf, "mps2-an386", timeout=60)
    loop = next(ev for ev in map(parse_line, run.lines) if ev is not None and ev.kind == "loop")
    return loop.int("instructions") / loop.int("ticks")


@needs("arm-none-eabi-gcc")
@needs("qemu-system-arm")
@pytest.mark.parametrize("name", ["vww_96_int8", "pretrainedResnet_quant"])
def test_qemu_end_to_end(shared_models, name, tmp_path, qemu_instructions_per_tick):
    """Cross-compiled, booted in QEMU, every output equal to the host interpreter's; and the
    fit check's figures against arm-none-eabi-size and the firmware's own report."""
    r = cli("run", "--board", "mps2-an386", "--model", shared_models / f"{name}.tflite", "--runtime", "aot",
            "--input", "test-vectors", "--out", tmp_path / "fw", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["vectors"] == 10 and j["mismatches"] == 0
    assert j["ticks_per_inference"] > 0
    assert j["instructions_per_inference"] == pytest.approx(j["ticks_per_inference"] * qemu_instructions_per_tick,
                                                            rel=1e-4)
    est = j["estimate"]
    # measured by the firmware: the arena painted before the first input, the highest byte no longer
    # painted after the last inference. It ends where the plan does: the top buffer is written whole.
    assert j["arena_bytes"] == est["arena_bytes"]
    # the fit check's flash is an upper bound, above the linked image by less than 1.5 KiB (most
    # of it the application allowance, measured on TFLM firmware, whose main loop is larger)
    assert j["flash_bytes"] <= est["flash_bytes"] <= j["flash_bytes"] + 1536
    # static RAM is the arena plus a few bytes of port state; the stack used fits what is reserved
    assert est["arena_bytes"] <= j["sram_bytes"] <= est["arena_bytes"] + 64
    assert 0 < j["stack_used_bytes"] < 16384 and j["sram_bytes"] + 16384 <= est["sram_bytes"]
    assert shutil.which("arm-none-eabi-size")


@needs("qemu-system-arm")
def test_qemu_runs_the_kernels_chosen_per_layer(tmp_path):
    """The kernel choices a Cortex-M4 build makes (the DSP paths written out in assembly, which
    no host build runs): a depthwise convolution over one input channel as a convolution, border
    windows in pairs, a pointwise convolution over 7 x 5 pixels, a 1xN convolution; every output
    equal to the host interpreter's."""
    from tinymodels import aot_catalogue

    model = tmp_path / "audio.tflite"
    model.write_bytes(aot_catalogue()["audio_front_pointwise"])
    r = cli("run", "--board", "mps2-an386", "--model", model, "--runtime", "aot", "--vectors", "10",
            "--out", tmp_path / "fw", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["vectors"] == 10 and j["mismatches"] == 0
    source = (tmp_path / "fw" / "aot" / "tg_model.c").read_text()
    assert "one input channel: run as a convolution of its filters" in source
    # the pointwise layer pairs pixels across rows, forwards or (where the planner runs it over its
    # input from above) backwards; the comment says so
    assert "pointwise: pixels paired across rows" in source
    assert "tg_conv2d_1x1(" in source or "tg_conv2d_1x1_backwards(" in source


@needs("arm-none-eabi-gcc")
def test_sparkfun_edge_aot_firmware_links(tmp_path):
    import os

    if not os.environ.get("AMBIQ_ROOT"):
        pytest.skip("AMBIQ_ROOT is not set: point it at the AmbiqSuite SDK with boards_sfe to link the Edge image")
    r = cli("build", "--board", "sparkfun-edge", "--runtime", "aot", "--out", tmp_path / "edge", "--compile", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    linked = j["size"]["text"] + j["size"]["data"]
    assert linked <= j["flash"]["total_bytes"] <= linked + 1536
    assert j["size"]["data"] + j["size"]["bss"] <= j["sram"]["total_bytes"] - j["sram"]["stack_bytes"]


@needs("arm-none-eabi-gcc")
@needs("qemu-system-arm")
def test_serial_input_aot_firmware_answers_like_the_host(shared_models, tmp_path):
    """--runtime aot --input serial: `monitor --send` feeds inputs over QEMU's UART socket; the
    firmware's raw outputs equal the host tflite-micro interpreter's."""
    from qemu_serial import send_inputs

    from tinygen.boards import load_board
    from tinygen.pipeline.build import BuildOptions, build, compile_and_run

    path = shared_models / "kws_ref_model.tflite"
    model = path.read_bytes()
    result = build(load_board("mps2-an386"), path, None, tmp_path / "fw", opts=BuildOptions(input_source="serial", raw_output=True, runtime="aot"))
    compile_and_run(result, None, {})
    inputs = np.random.default_rng(3).integers(-128, 128, size=(3, 1, 49, 10, 1), dtype=np.int8)
    expected = _tflm(model, inputs)
    stats, outputs = send_inputs(tmp_path / "fw" / "build" / "firmware.elf", [x.tobytes() for x in inputs],
                                 tmp_path / "run.jsonl")
    assert stats.inferences == 3
    for out, want in zip(outputs, expected):
        assert np.frombuffer(out, dtype=np.int8).tolist() == want.reshape(-1).tolist()


@needs("arm-none-eabi-gcc")
def test_a_board_without_a_port_still_gets_the_model_as_c(tmp_path, portless_board):
    """No firmware port for a user's own board, but aot/ is plain C99 for any project: it compiles for
    a Cortex-M7 as well."""
    import subprocess

    out = tmp_path / "f7"
    r = cli("build", "--board", portless_board, "--runtime", "aot", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "no firmware port" in r.stderr and "aot/" in r.stderr
    sources = sorted(str(p) for p in (out / "aot").glob("*.c"))
    assert any(s.endswith("tg_model.c") for s in sources) and not (out / "src").exists()
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-std=c99",
                    "-O2", "-Wall", "-Werror", "-c", *sources], cwd=tmp_path, check=True)


def test_the_one_multiply_output_stage_is_tflites_two_roundings():
    """firmware/aot/tg_conv.c's requant_rounded (SMMULR(2 acc, m), then (y - [y < 0] + w >> 8) >> e,
    e the low byte of the word w from lower.fast_rounding) against TFLite's MultiplyByQuantizedMultiplier plus the output
    offset: every accumulator in [-2^22, 2^22), random ones up to the proven 2^30, and the ties of
    the second rounding, for random multipliers, right shifts and offsets."""
    from tinygen.aot.lower import fast_rounding

    def tflite(acc, m, e, off):      # SaturatingRoundingDoublingHighMul, RoundingDivideByPOT
        y = (acc * m + (1 << 30)) >> 31
        mask = (1 << e) - 1
        return (y >> e) + ((y & mask) > (mask >> 1) + (y < 0)) + off

    def one_multiply(acc, m, w):
        y = (2 * acc * m + (1 << 31)) >> 32     # SMMULR
        return (y + (y >> 31) + (w >> 8)) >> (w & 0xFF)

    rng = np.random.default_rng(17)
    for _ in range(40):
        m, e, off = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(1, 18)), int(rng.integers(-128, 128))
        w = fast_rounding(np.zeros(1), np.zeros(1), [-e], off)
        if w is None:       # out_offset * 2^e would not fit: the host keeps the 64-bit path
            assert abs(off) << e >= 1 << 22
            continue
        assert int(w[0]) & 0xFF == e and -(1 << 31) <= int(w[0]) < 1 << 31
        ties = np.arange(-(1 << (30 - e)), 1 << (30 - e), max(1, (1 << (31 - e)) // 4096), dtype=np.int64)
        ties = (ties << e) + (1 << (e - 1))                  # y exactly halfway between two outputs
        near = (ties << 31) // m
        accs = [np.arange(-(1 << 22), 1 << 22, dtype=np.int64),
                rng.integers(-(1 << 30) + 1, 1 << 30, size=1 << 20, dtype=np.int64),
                np.clip(np.concatenate([near + d for d in range(-2, 3)]), -(1 << 30) + 1, (1 << 30) - 1)]
        for acc in accs:
            assert np.array_equal(one_multiply(acc, m, int(w[0])), tflite(acc, m, e, off))
    # and where it would not be exact, the host does not use it
    assert fast_rounding(np.zeros(2), np.zeros(2), [-5, 0], 0) is None              # a shift of 0
    assert fast_rounding(np.zeros(1), np.zeros(1), [-20], 100) is None              # the word would not fit
    assert fast_rounding(np.array([0, 1 << 30]), np.zeros(2), [-5, -5], 0) is None  # a sum of 2^30
    assert fast_rounding(np.zeros(1), np.array([1 << 23]), [-5], 0) is None         # 128 * taps = 2^30


_MUL32_HARNESS = r"""
#include <stdio.h>
#include "tg_fixedpoint.h"
int main(void) {  /* (a, m, w) triples in, tg_mulhi31(a, m) and tg_requant_rounded(a, m, w) out */
  int32_t in[3], out[2];
  while (fread(in, sizeof in, 1, stdin) == 1) {
    out[0] = tg_mulhi31(in[0], in[1]);
    out[1] = tg_requant_rounded(in[0], in[1], in[2]);
    fwrite(out, sizeof out, 1, stdout);
  }
  return 0;
}
"""


@needs("cc")
def test_the_32_bit_multiply_for_cores_without_a_64_bit_one(aot_models, tmp_path):
    """tg_fixedpoint.h's tg_mulhi31, which a Thumb-1 build (Cortex-M0/M0+: no 32x32 -> 64 multiply,
    so int64 products are libgcc calls) uses for the one-multiply output stage (TG_MUL32), is
    (a m + 2^30) >> 31 for |a| < 2^30 and 0 <= m < 2^31: at the edges of its 16-bit halves and at
    random; and models built with it on the host match tflite-micro."""
    from tinygen.aot.lower import fast_rounding

    fw = resource_dir("firmware") / aot.KERNEL_DIR
    (tmp_path / "mul32.c").write_text(_MUL32_HARNESS)
    exe = tmp_path / "mul32"
    subprocess.run([hostrun.compiler(), "-std=c99", "-O2", "-Wall", "-Werror", "-DTG_MUL32", f"-I{fw}",
                    str(tmp_path / "mul32.c"), "-o", str(exe)], check=True)
    rng = np.random.default_rng(31)
    edges_a = np.array([-(1 << 30) + 1, (1 << 30) - 1, 0, 1, -1, 0x7FFF, 0x8000, -0x8000, -0x8001, (1 << 30) - 0x8000,
                        -(1 << 30) + 0x7FFF], dtype=np.int64)
    edges_m = np.array([0, 1, 0xFFFF, 0x10000, 0x7FFF0000, 0x7FFFFFFF, 1 << 30, (1 << 30) + 0xFFFF], dtype=np.int64)
    a = np.concatenate([np.repeat(edges_a, len(edges_m)), rng.integers(-(1 << 30) + 1, 1 << 30, size=1 << 19),
                        rng.integers(-(1 << 16), 1 << 16, size=1 << 17)])
    m = np.concatenate([np.tile(edges_m, len(edges_a)), rng.integers(0, 1 << 31, size=1 << 19),
                        rng.integers(1 << 30, 1 << 31, size=1 << 17)])
    e = rng.integers(1, 18, size=len(a))
    off = rng.integers(-128, 128, size=len(a))
    fits = (np.abs(off) << e) < 1 << 22     # else the host keeps the 64-bit stage: take e = 1, offset 0 there
    e, off = np.where(fits, e, 1), np.where(fits, off, 0)
    words = {(s, o): int(fast_rounding(np.zeros(1), np.zeros(1), [-s], o)[0]) for s, o in set(zip(e.tolist(), off.tolist()))}
    w = np.array([words[k] for k in zip(e.tolist(), off.tolist())], dtype=np.int64)
    triples = np.stack([a, m, w], axis=1).astype(np.int32)
    r = subprocess.run([str(exe)], input=triples.tobytes(), capture_output=True, check=True)
    got = np.frombuffer(r.stdout, dtype=np.int32).reshape(-1, 2).astype(np.int64)
    y = (a * m + (1 << 30)) >> 31
    assert np.array_equal(got[:, 0], y)
    mask = (1 << e) - 1
    assert np.array_equal(got[:, 1], (y >> e) + ((y & mask) > (mask >> 1) + (y < 0)) + off)

    # whole models, every kernel that takes the one-multiply stage, built as a Cortex-M0 build is
    for name in ["audio_front_pointwise", "conv_even_same_stride2", "dwconv_stride2_valid_relu", "conv_per_tensor"]:
        hm, compiled = hostrun.compile_model(aot_models[name], name, tmp_path / name)
        files = {f: ("#define TG_MUL32 1\n" + t if f.endswith(".c") else t) for f, t in compiled.files.items()}
        hm = hostrun.build_host(files, compiled.program, tmp_path / f"{name}-mul32")
        xs = _inputs(hm, SAMPLES)
        assert _differ(hm.run(xs)[0], _tflm(aot_models[name], xs)) == 0, name



@needs("cc")
def test_host_kernel_objects_come_only_from_a_private_cache(tmp_path, monkeypatch):
    """Kernel objects are reused from a folder only this user can write; where the temp folder's
    cache is not that (writable by others), they are built beside the model."""
    import os
    import tempfile

    from tflite_builder import random_model

    model = random_model("CONV_2D", np.random.default_rng(5))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cache = tmp_path / f"tinygen-host-objects-{os.getuid()}"
    cache.mkdir()
    os.chmod(cache, 0o777)
    hostrun.compile_model(model, "conv", tmp_path / "a")
    assert not list(cache.iterdir()) and list((tmp_path / "a").glob("*.o"))   # not trusted: built beside the model
    assert cache.stat().st_mode & 0o777 == 0o700                               # and made private for next time
    hostrun.compile_model(model, "conv", tmp_path / "b")
    assert list(cache.glob("*.o")) and not list((tmp_path / "b").glob("*.o"))
