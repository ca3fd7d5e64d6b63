"""MLPerf Tiny conformance: tinygen's `--harness mlperf` firmware, booted in QEMU (mps2-an386),
driven the way the benchmark's own host software drives a DUT (mlcommons/tiny benchmark/runner:
serial_device.py, device_under_test.py, script.py), for the four benchmarks and both runtimes.

The host below is written from the runner's source, not imported from it: commands end with
'%', a response is every line up to the one that contains "m-ready" ('\\r' and '\\0' dropped),
the DUT's name and model come from the runner's regexes, inputs go in 31-byte `db` chunks, and
`infer N W` is read as _gather_infer_results reads it (the first m-lap-us is the start, the next
ones the end, runtime = end - start, throughput = N / runtime). What the DUT computes is checked
against the host tflite-micro interpreter on the input converted as the reference submissions
convert it (uint8 pixels - 128 for ic01 and vww01, float32 quantized by the DUT for ad01, int8
for kws01), and ad01's score against the reconstruction error the reference computes.

The AOT runtime needs nothing beyond arm-none-eabi-gcc and QEMU and runs in CI (about two minutes,
most of it the four builds and vww01's 27,648-byte load at the UART's pace);
the TFLM runtime needs TFLM_ROOT and skips without it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinygen.boards import load_board
from tinygen.model import graph as analyze
from tinygen.model.mlperf_tiny import BENCHMARKS
from tinygen.pipeline.build import BuildOptions, build, compile_and_run

TFLM_ROOT = os.environ.get("TFLM_ROOT")
MODELS = {"kws01": "kws_ref_model.tflite", "vww01": "vww_96_int8.tflite", "ic01": "pretrainedResnet_quant.tflite",
          "ad01": "ad01_int8.tflite"}
# The ids the runner's test scripts know (benchmark/runner/tests_*.yaml): any other stops the host.
RUNNER_IDS = {"ad01", "ic01", "kws01", "vww01", "sww01"}
SYSTICK_HZ = 25_000_000          # what mps2's 32-bit cycle count counts (firmware/boards/mps2/board.c)
WRAP_US = (1 << 32) * 1_000_000 // SYSTICK_HZ    # 171.8 s: where a 32-bit count of it wraps

pytestmark = [
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"),
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed"),
]
RUNTIMES = [pytest.param("aot"),
            pytest.param("tflm", marks=[pytest.mark.tflm, pytest.mark.skipif(
                not TFLM_ROOT, reason="TFLM_ROOT is not set: the TFLM runtime's conformance needs a tflite-micro checkout")])]


class ReferenceHost:
    """The runner's SerialDevice + DUT, over QEMU's UART socket."""

    def __init__(self, sock: socket.socket, timeout: float = 60.0):
        self.sock, self.timeout, self.pending = sock, timeout, b""
        sock.settimeout(timeout)

    def _read_line(self) -> str:
        # SerialDevice._read_loop: characters up to '\n', without '\r' and '\0'
        while b"\n" not in self.pending:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("the DUT closed its UART")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode().replace("\r", "").replace("\0", "")

    def send_command(self, command: str) -> list[str]:
        self.sock.sendall((command + "%").encode())
        lines = []
        while True:
            resp = self._read_line()
            if resp:
                lines.append(resp)
            if "m-ready" in resp:
                return lines

    def get_name(self) -> str | None:
        for line in self.send_command("name"):
            m = re.match(r'^m-(name)-dut-\[([^]]+)]$', line)
            if m:
                return m.group(2)
        return None

    def get_profile(self) -> dict[str, str]:
        found = {}
        for line in self.send_command("profile"):
            m = re.match(r'^m-(model|profile)-\[([^]]+)]$', line)
            if m:
                found[m.group(1)] = m.group(2)
        return found

    def load(self, data: bytes) -> list[list[str]]:
        answers = [self.send_command(f"db load {len(data)}")]
        for i in range(0, len(data), 31):
            answers.append(self.send_command(f"db {''.join(f'{d:02x}' for d in data[i:i + 31])}"))
        return answers

    def infer(self, number: int, warmups: int) -> dict:
        """`infer N W` and script.py's _gather_infer_results over its lines."""
        lines = self.send_command(f"infer {number} {warmups}")
        result: dict = {"lines": lines}
        for res in lines:
            m = re.match(r'^m-results-\[([^]]+)\]$', res)
            if m:
                result["results"] = [float(x) for x in m.group(1).split(',') if x.strip()]
                continue
            m = re.match(r'^m-lap-us-([0-9]+)$', res)
            if m:
                result["end_time" if "start_time" in result else "start_time"] = int(m.group(1))
        if "start_time" in result and "end_time" in result:
            result["elapsed_time"] = result["end_time"] - result["start_time"]
            result["throughput"] = number / (result["elapsed_time"] / 1e6) if result["elapsed_time"] > 0 else 0
        return result


class Qemu:
    """mps2-an386 with its UART on a socket QEMU listens on before the guest starts, at
    `-icount shift=N` (virtual time 2**N ns per instruction)."""

    def __init__(self, elf: Path, shift: int = 0):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        self.proc = subprocess.Popen(
            ["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-semihosting",
             "-icount", f"shift={shift}",
             "-chardev", f"socket,id=uart0,fd={listener.fileno()},server=on,wait=on,nodelay=on",
             "-serial", "chardev:uart0", "-kernel", str(elf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=[listener.fileno()])
        listener.close()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        # one command and its answer per round trip: Nagle's algorithm on either side would hold
        # each small write for the other's delayed ACK (40 ms), nodelay=on above and this here
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self) -> ReferenceHost:
        host = ReferenceHost(self.sock)
        # main.py's init_dut waits for the DUT to boot before its first command; what the DUT
        # printed on its own until then (ee_benchmark_initialize) is kept for the test
        host.boot = []
        while not host.boot or host.boot[-1] != "m-ready":
            host.boot.append(host._read_line())
        return host

    def __exit__(self, *exc):
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def firmware(tmp_path_factory, shared_models):
    """One --harness mlperf build per (runtime, benchmark), made when a test first asks for it."""
    built: dict[tuple[str, str], Path] = {}

    def get(runtime: str, bench: str) -> Path:
        if (runtime, bench) not in built:
            out = tmp_path_factory.mktemp(f"{runtime}-{bench}")
            result = build(load_board("mps2-an386"), shared_models / MODELS[bench], None, out / "fw",
                           opts=BuildOptions(harness="mlperf", runtime=runtime))
            compile_and_run(result, Path(TFLM_ROOT) if TFLM_ROOT else None, {})
            built[runtime, bench] = out / "fw" / "build" / "firmware.elf"
        return built[runtime, bench]
    return get


def _reference_input(bench: str, rng: np.random.Generator, graph) -> tuple[bytes, np.ndarray]:
    """(what the runner sends, the int8 tensor the reference submission makes of it)."""
    t = graph.tensors[graph.inputs[0]]
    if BENCHMARKS[bench].input_kind == "uint8":
        pixels = rng.integers(0, 256, size=t.shape, dtype=np.uint8)
        return pixels.tobytes(), (pixels.astype(np.int16) - 128).astype(np.int8)
    if BENCHMARKS[bench].input_kind == "float32":
        scale, zp = np.float32(t.first_scale), t.first_zero_point
        lo, hi = (-128 - zp) * scale, (127 - zp) * scale      # a little past both ends: the clamping is in play
        x = rng.uniform(lo - 5, hi + 5, size=t.shape).astype("<f4")
        q = x / scale                                          # QuantizeFloatToInt8: round(value / scale) + zp
        q = np.clip(np.sign(q) * np.floor(np.abs(q) + 0.5) + zp, -128, 127).astype(np.int8)
        return x.tobytes(), q
    x = rng.integers(-128, 128, size=t.shape, dtype=np.int8)
    return x.tobytes(), x


def _reference_results(bench: str, model_bytes: bytes, graph, sent: bytes, tensor: np.ndarray) -> list[float]:
    """th_results of the reference submission, from the host interpreter's output."""
    from tinygen.tflm.interpreter import int8_predict

    out_t = graph.tensors[graph.outputs[0]]
    q = int8_predict(model_bytes, graph, tensor)[0].reshape(-1)      # tensor has the model's shape, batch of 1
    deq = (q.astype(np.float32) - np.float32(out_t.first_zero_point)) * np.float32(out_t.first_scale)
    if BENCHMARKS[bench].output_kind == "mse":
        x = np.frombuffer(sent, dtype="<f4")
        return [float(np.mean((deq - x) ** 2, dtype=np.float32))]
    return [float(v) for v in deq]


def _approx(values: list[float]):
    return pytest.approx(values, abs=5.1e-4, rel=2e-6)   # printed to three decimals, as the references print


@pytest.mark.parametrize("bench", list(MODELS))
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_runner_identifies_loads_runs_and_reads_the_dut(firmware, shared_models, runtime, bench):
    path = shared_models / MODELS[bench]
    model_bytes = path.read_bytes()
    graph = analyze.parse(model_bytes)
    b = BENCHMARKS[bench]
    rng = np.random.default_rng(14)
    with Qemu(firmware(runtime, bench)) as host:
        assert host.boot[0] == "m-timestamp-mode-performance" and host.boot[-2:] == ["m-init-done", "m-ready"]
        # identity, as main.py's init_dut and run_test look it up
        assert host.get_name() == "tinygen"
        profile = host.get_profile()
        assert profile == {"profile": "ULPMark for tinyML Firmware V0.0.1", "model": bench}
        assert profile["model"] in RUNNER_IDS

        # inputs in the reference form, outputs as the reference prints them
        sent, tensor = _reference_input(bench, rng, graph)
        assert len(sent) == b.payload_bytes
        answers = host.load(sent)
        assert answers[0] == [f"m-[Expecting {b.payload_bytes} bytes]", "m-ready"]
        assert [a for a in answers[1:] if a != ["m-ready"]] == [["m-load-done", "m-ready"]]
        want = _reference_results(bench, model_bytes, graph, sent, tensor)
        assert len(want) == (1 if b.output_kind == "mse" else b.output_elements)
        one = host.infer(1, 0)
        assert one["results"] == _approx(want)
        assert one["elapsed_time"] > 0 and one["throughput"] > 0
        assert host.send_command("results") == [one["lines"][-2], "m-ready"]

        # error recovery: an oversized load is refused and stays refused
        too_big = host.send_command(f"db load {b.payload_bytes + 1}")
        assert too_big == [f"e-[Supplied buffer size {b.payload_bytes + 1} exceeds maximum of {b.payload_bytes}]",
                           "m-ready"]
        chunk = host.send_command("db " + "00" * 31)
        assert "m-load-done" not in chunk and chunk[0] == "e-[No 'db load' in progress]"
        refused = host.infer(1, 0)
        assert "results" not in refused and "start_time" not in refused
        assert refused["lines"][0].startswith("e-[No input loaded")
        # a load cut short, and one with a bad digit, are not run either
        host.send_command(f"db load {b.payload_bytes}")
        host.send_command("db " + "00" * 31)
        assert host.infer(1, 0)["lines"][0].startswith("e-[No input loaded")
        host.send_command(f"db load {b.payload_bytes}")
        assert host.send_command("db 0g")[0] == "e-[Invalid hex digit]"
        assert host.send_command("db " + "00" * 31)[0] == "e-[No 'db load' in progress]"

        # a good load afterwards works as the first did, over several timed inferences after
        # warm-ups too: the same answer, and the same time per inference (deterministic under
        # -icount; the input is copied in before every inference)
        sent, tensor = _reference_input(bench, rng, graph)
        host.load(sent)
        want = _reference_results(bench, model_bytes, graph, sent, tensor)
        three = host.infer(3, 1)
        assert three["results"] == _approx(want)
        assert three["elapsed_time"] / 3 == pytest.approx(one["elapsed_time"], rel=0.02)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_laps_do_not_wrap_with_the_32_bit_cycle_count(firmware, shared_models, runtime):
    """At -icount shift=10 (1.024 us per instruction) mps2's 32-bit SysTick count wraps after
    171.8 s of guest time, reached in seconds. An `infer` whose run straddles that point still
    gives end > start and the same time per inference as a run that does not."""
    graph = analyze.parse((shared_models / MODELS["ad01"]).read_bytes())
    sent, _ = _reference_input("ad01", np.random.default_rng(1), graph)
    with Qemu(firmware(runtime, "ad01"), shift=10) as host:
        host.load(sent)
        per = host.infer(4, 0)["elapsed_time"] / 4
        now = lambda: int(host.send_command("timestamp")[0][len("m-lap-us-"):])  # noqa: E731
        t = now()
        assert t < WRAP_US - 30e6, "the guest passed the wrap before the test could straddle it"
        # inferences to bring the clock to 20 s before the wrap, then one run across it
        host.infer(max(1, int((WRAP_US - 20e6 - t) / per)), 0)
        t = now()
        assert WRAP_US - 30e6 < t < WRAP_US
        n = int((WRAP_US - t + 20e6) / per)
        r = host.infer(n, 0)
        assert r["start_time"] < WRAP_US < r["end_time"]
        assert r["elapsed_time"] / n == pytest.approx(per, rel=0.01)
        assert now() > r["end_time"]
