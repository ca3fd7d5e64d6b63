"""The MLPerf Tiny DUT protocol: tinygen's client against a fake DUT, and tinygen's C DUT
(firmware/common/mlperf_dut.c) built for this machine and driven by the same client."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tty

import pytest

from tinygen.device.mlperf import MlperfDut, MlperfError
from tinygen.resources import resource_dir


class FakeDut(threading.Thread):
    """Speaks the protocol on a pty: its 'model' returns the mean of the loaded bytes / 255."""

    def __init__(self, latency_us=1234, boot=True):
        super().__init__(daemon=True)
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.latency_us, self.boot, self.clock, self.buf, self.want = latency_us, boot, 0, b"", 0

    def say(self, text):
        os.write(self.master, text.encode())

    def run(self):
        time.sleep(0.3)
        if self.boot:
            self.say("m-init-done\r\nm-ready\r\n")
        cmd = b""
        while True:
            try:
                c = os.read(self.master, 1)
            except OSError:
                return
            if c != b"%":
                cmd += c
                continue
            words, cmd = cmd.decode().split(), b""
            if words == ["name"]:
                self.say("m-name-dut-[fake]\r\n")
            elif words == ["profile"]:
                self.say("m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\nm-model-[kws01]\r\n")
            elif words[:2] == ["db", "load"]:
                self.want, self.buf = int(words[2]), b""
                self.say(f"m-[Expecting {self.want} bytes]\r\n")
            elif words[0] == "db":
                self.buf += bytes.fromhex(words[1])
                if len(self.buf) == self.want:
                    self.say("m-load-done\r\n")
            elif words[0] == "infer":
                n, w = int(words[1]), int(words[2])
                self.say(f"m-warmup-start-{w}\r\nm-warmup-done\r\nm-infer-start-{n}\r\n")
                t0 = self.clock
                self.clock += n * self.latency_us
                mean = sum(self.buf) / max(1, len(self.buf)) / 255
                self.say(f"m-lap-us-{t0}\r\nm-lap-us-{self.clock}\r\nm-infer-done\r\nm-results-[{mean:.3f},0.000]\r\n")
            else:
                self.say(f"e-[Unknown command: {words[0] if words else ''}]\r\n")
            self.say("m-ready\r\n")


def test_client_against_a_fake_dut():
    from tinygen.device.monitor import open_port

    dut = FakeDut()
    dut.start()
    c = MlperfDut(open_port(dut.path, 115200), timeout=5)
    assert c.sync() == "dut [fake]"
    assert c.profile() == {"profile": "ULPMark for tinyML Firmware V0.0.1", "model": "kws01"}
    c.load(bytes(range(100)))   # 4 db chunks of 32 bytes
    r = c.infer(10, 2)
    assert r.latency_us == 1234 and r.results == [pytest.approx(49.5 / 255, abs=1e-3), 0.0]
    with pytest.raises(MlperfError, match="Unknown command: bogus"):
        c.command("bogus")


def test_cli_mlperf_json():
    dut = FakeDut(latency_us=182_000)
    dut.start()
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", dut.path, "--board", "nucleo-l4r5zi",
                        "--mlperf", "infer", "3", "1", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["dut"] == "dut [fake]" and s["latency_us"]["mean"] == 182_000
    assert s["energy_uj"]["kind"] == "estimated" and s["energy_uj"]["mean"] == pytest.approx(3.3 * 13.2 * 182_000 / 1000)


def test_cli_mlperf_silent_dut_is_one_sentence(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "monitor", "--port", os.ttyname(slave),
                        "--mlperf", "infer", "1", "0"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TINYGEN_MLPERF_TIMEOUT="2"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "did not answer" in r.stderr


class PipePort:
    """A subprocess's stdin/stdout as the small part of pyserial's API MlperfDut uses."""

    def __init__(self, proc):
        self.p = proc
        os.set_blocking(proc.stdout.fileno(), False)

    @property
    def in_waiting(self):
        return 0

    def read(self, n):
        try:
            data = os.read(self.p.stdout.fileno(), 4096)
        except BlockingIOError:
            time.sleep(0.001)
            return b""
        return data

    def write(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()


_HOST_DUT = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "mlperf_dut.h"
#include "tinygen_board.h"
void board_serial_write(const char* d, size_t n) { fwrite(d, 1, n, stdout); fflush(stdout); }
int board_serial_read(void) { int c = getchar(); if (c == EOF) board_exit(0); return c; }
/* A 32-bit cycle counter at 1 MHz that starts 3 ms before it wraps, 500 cycles a call. */
static uint32_t t = 0xFFFFFFFFu - 3000u;
uint32_t board_cycles(void) { return t += 500u; }
uint32_t board_clock_hz(void) { return 1000000u; }
uint64_t board_micros(void) { return board_cycles(); }
void board_exit(int code) { _exit(code); }
#if TG_MLPERF_ENERGY
void board_timestamp_pin_init(void) { fprintf(stderr, "pin init\n"); }
void board_timestamp_pin_write(int level) { fprintf(stderr, "pin %d at %u\n", level, (unsigned)t); }
#endif
static int8_t input[4];
static int8_t output[4];
static int infer(void) {
  if (TG_MLPERF_ENERGY) fprintf(stderr, "infer\n");
  for (int i = 0; i < 4; i++) output[i] = input[i];
  return 0;
}
int main(void) {
  static uint8_t buf[MLPERF_PAYLOAD_BYTES(4, KIND)];
  static int8_t staged[4];
  const mlperf_model_t m = {"toy01", infer, input, 4, 0.5f, -1, KIND, output, 4, 0.125f, 0, 0, OUT};
  mlperf_dut_run(&m, buf, sizeof(buf), staged);
}"""


def _host_dut(tmp_path, kind="MLPERF_INPUT_INT8", out="MLPERF_OUTPUT_VECTOR", energy=False):
    fw = resource_dir("firmware")
    (tmp_path / "host.c").write_text(_HOST_DUT)
    exe = tmp_path / f"dut-{kind}-{out}-{energy}"
    subprocess.run(["cc", "-std=gnu99", "-Wall", "-Werror", f"-DKIND={kind}", f"-DOUT={out}",
                    f"-DTG_MLPERF_ENERGY={int(energy)}", f"-I{fw / 'common'}", f"-I{fw / 'include'}",
                    tmp_path / "host.c", fw / "common/mlperf_dut.c", fw / "common/harness.c", "-o", exe], check=True)
    return subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_the_c_dut_speaks_the_protocol(tmp_path):
    proc = _host_dut(tmp_path)
    try:
        c = MlperfDut(PipePort(proc), timeout=5)
        assert c.sync() == "dut [tinygen]"
        assert c.profile()["model"] == "toy01"
        c.load(bytes([8, 0xF8, 0x40, 0x7F]))          # 1.0, -1.0, 8.0, 15.875
        r = c.infer(4, 1)
        assert r.results == [1.0, -1.0, 8.0, 15.875]
        # the laps straddle the fake counter's 32-bit wrap: the 64-bit time goes on (two reads, 500 us apart,
        # plus one read per inference in between)
        assert r.total_us == 5 * 500
        with pytest.raises(MlperfError, match="must be >0 bytes"):
            c.command("db load 0")
        with pytest.raises(MlperfError, match="Supplied buffer size 5 exceeds maximum of 4"):
            c.command("db load 5")
        with pytest.raises(MlperfError, match="No 'db load' in progress"):
            c.command("db 01020304")               # the rejected load stays rejected: no m-load-done
        with pytest.raises(MlperfError, match="No input loaded"):
            c.command("infer 1 0")                 # and the earlier input is not run
        with pytest.raises(MlperfError, match="Unknown command: dance"):
            c.command("dance")
        c.load(bytes([1, 2, 3, 4]))
        assert c.infer(1, 0).results == [0.125, 0.25, 0.375, 0.5]
    finally:
        proc.kill()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_the_c_dut_converts_inputs_and_scores_as_the_references(tmp_path):
    """uint8 pixels minus 128 (ic01, vww01); float32 quantized half away from zero and the mean
    squared reconstruction error (ad01)."""
    import numpy as np

    proc = _host_dut(tmp_path, "MLPERF_INPUT_UINT8")
    try:
        c = MlperfDut(PipePort(proc), timeout=5)
        c.sync()
        c.load(bytes([0, 127, 128, 255]))
        assert c.infer(1, 0).results == [-16.0, -0.125, 0.0, 15.875]    # (b - 128) * 0.125
    finally:
        proc.kill()
    proc = _host_dut(tmp_path, "MLPERF_INPUT_FLOAT32", "MLPERF_OUTPUT_MSE")
    try:
        c = MlperfDut(PipePort(proc), timeout=5)
        c.sync()
        x = np.array([0.25, -0.75, 3.0, 100.0], dtype="<f4")
        with pytest.raises(MlperfError, match="exceeds maximum of 16"):
            c.command("db load 17")
        c.load(x.tobytes())
        q = np.clip(np.sign(x / 0.5) * np.floor(np.abs(x / 0.5) + 0.5) - 1, -128, 127)   # [0, -3, 5, 127]
        out = q * 0.125                                                                 # the toy model copies
        assert c.infer(2, 0).results == [pytest.approx(float(np.mean((out - x) ** 2)), abs=5e-4)]
        assert c.command("results") == [f"m-results-[{np.mean((out - x) ** 2):.3f}]"]
        c.command("db load 16")
        with pytest.raises(MlperfError, match="Invalid hex digit"):
            c.command("db zz")
        with pytest.raises(MlperfError, match="No input loaded"):
            c.command("infer 1 0")
    finally:
        proc.kill()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_the_c_dut_in_energy_mode_pulses_the_pin_and_prints_no_laps(tmp_path):
    proc = _host_dut(tmp_path, energy=True)
    try:
        c = MlperfDut(PipePort(proc), timeout=5)
        c.sync()
        c.load(bytes(4))
        lines = c.command("infer 3 0")
        assert not any(l.startswith("m-lap-us") for l in lines) and "m-infer-done" in lines
        assert c.command("timestamp") == []
    finally:
        proc.kill()
    events = proc.stderr.read().decode().split("\n")[:-1]
    pins = [e.split(" at ")[0] for e in events]
    # boot: init and one pulse (the pin left high); the infer's two pulses bracket its three
    # inferences (MLPerf's window is the falling edges' span); then one pulse per timestamp
    assert pins == ["pin init", "pin 0", "pin 1", "pin 0", "pin 1"] + ["infer"] * 3 + ["pin 0", "pin 1"] * 2
    # each pulse is held low 1 ms (the fake clock's 1 MHz x 1,000 cycles, in 500-cycle steps) and no
    # more than a step longer: EEMBC's th_timestamp asks for at least 62.5 ns, the references hold ~1 ms
    at = [int(e.split(" at ")[1]) for e in events if e.startswith("pin ") and " at " in e]
    lows = [(at[i + 1] - at[i]) & 0xFFFFFFFF for i in range(0, len(at), 2)]
    assert all(1000 <= low <= 1500 for low in lows), lows


_MICROBIT_MAIN = r"""
#include "mlperf_dut.h"
#include "tinygen_board.h"
static int8_t input[4], output[4];
static int infer(void) { for (int i = 0; i < 4; i++) output[i] = input[i]; return 0; }
int main(void) {
  static uint8_t buf[4];
  board_init();
  const mlperf_model_t m = {"kws01", infer, input, 4, 1.0f, 0, MLPERF_INPUT_INT8, output, 4, 1.0f, 0, 0,
                            MLPERF_OUTPUT_VECTOR};
  mlperf_dut_run(&m, buf, sizeof(buf), 0);
}"""


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc or qemu-system-arm is not installed")
def test_energy_mode_pulses_the_micro_bits_timestamp_pin_in_qemu(tmp_path):
    """The nrf51 port's energy mode, built as render does it (the board profile's pin, 9600 baud),
    booted in QEMU's microbit machine: QEMU's GPIO model traces the pin, which idles high and
    falls once per timestamp; the UART carries no m-lap-us."""
    import re

    from tinygen.boards import load_board

    pin = load_board("bbc-microbit").raw["serial"]["timestamp_pin"]
    fw = resource_dir("firmware")
    port = fw / "boards" / "nrf51"
    (tmp_path / "main.c").write_text(_MICROBIT_MAIN)
    elf = tmp_path / "dut.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft", "-O2", "-std=c99", "-Wall",
                    "-Werror", "-DTG_MLPERF_ENERGY=1", f"-DTG_TIMESTAMP_PIN={pin}u", "-DTG_UART_BAUD=9600",
                    f"-I{fw / 'common'}", f"-I{fw / 'include'}", "-T", port / "nrf51.ld", "-Wl,--defsym=__stack_size=2048",
                    "-Wl,--gc-sections", "--specs=nano.specs", "-nostartfiles", tmp_path / "main.c",
                    port / "startup.c", port / "board.c", port / "timestamp_pin.c", fw / "common/mlperf_dut.c",
                    fw / "common/harness.c", fw / "common/syscalls.c", "-o", elf], check=True)
    trace = tmp_path / "gpio.log"
    from qemu_serial import mlperf_dut

    with mlperf_dut(elf, "microbit", ["-trace", "nrf51_gpio_update_output_irq", "-D", str(trace)], timeout=30) as c:
        assert c.sync() == "dut [tinygen]"
        c.load(bytes([1, 2, 3, 4]))
        lines = c.command("infer 2 0")
        assert "m-results-[1.000,2.000,3.000,4.000]" in lines
        assert not any(l.startswith("m-lap-us") for l in lines)
        c.command("timestamp")
        c.command("name")     # a round trip after the last pulse, so that it is in the trace
    levels = [int(m.group(1)) for m in
              re.finditer(rf"nrf51_gpio_update_output_irq line {pin} value (-?\d+)", trace.read_text())]
    # not driven at reset (QEMU's -1), high at init, then a low-high pulse at boot, two around
    # `infer` and one for `timestamp`
    assert levels == [-1, 1] + [0, 1] * 4, levels


def test_benchmarks_are_recognised_by_hash_or_shapes(shared_models):
    from tinygen.errors import ModelError
    from tinygen.model import graph as analyze
    from tinygen.model.mlperf_tiny import benchmark_for, recognise

    for name, bench in [("kws_ref_model.tflite", "kws01"), ("vww_96_int8.tflite", "vww01"),
                        ("pretrainedResnet_quant.tflite", "ic01"), ("ad01_int8.tflite", "ad01")]:
        g = analyze.parse((shared_models / name).read_bytes())
        t_in, t_out = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
        assert recognise(g.sha256, t_in.shape, t_out.elements) == (recognise.__globals__["BENCHMARKS"][bench],
                                                                    "the published reference model")
        # the same task retrained or shrunk has another hash: its shapes still tell
        assert recognise("0" * 64, t_in.shape, t_out.elements)[1] == "its input and output shapes"
        assert benchmark_for(name, "0" * 64, t_in.shape, t_out.elements).id == bench
    assert recognise("0" * 64, [1, 28, 28, 1], 10) is None
    with pytest.raises(ModelError, match="name its benchmark with --mlperf-model"):
        benchmark_for("digits.tflite", "0" * 64, [1, 28, 28, 1], 10)
    with pytest.raises(ModelError, match="must be one of kws01, vww01, ic01, ad01, sww01, not 'kws02'"):
        benchmark_for("m.tflite", "0" * 64, [1, 49, 10, 1], 12, "kws02")
    with pytest.raises(ModelError, match="ic01 .image classification. loads 3072 input values and reads 10 outputs, "
                                         "but m.tflite takes 490 and gives 12"):
        benchmark_for("m.tflite", "0" * 64, [1, 49, 10, 1], 12, "ic01")
    assert benchmark_for("m.tflite", "0" * 64, [1, 490], 12, "kws01").id == "kws01"   # same sizes, other layout


def test_payload_takes_each_benchmarks_form():
    import numpy as np

    from tinygen.device.mlperf import payload

    assert payload("ic01", np.full((32, 32, 3), 255.0)) == b"\xff" * 3072
    assert payload("ad01", np.ones(640)) == np.ones(640, "<f4").tobytes()
    assert payload("kws01", np.full(490, -1)) == b"\xff" * 490
    with pytest.raises(MlperfError, match="ic01 takes uint8 pixels"):
        payload("ic01", np.full((32, 32, 3), -1))
    with pytest.raises(MlperfError, match="vww01 loads 27648 bytes .27648 uint8 values.; this input has 3072"):
        payload("vww01", bytes(3072))


@pytest.mark.parametrize("args, said", [
    (["--mlperf-model", "kws01"], "need --harness mlperf"),
    (["--harness", "mlperf", "--mlperf-model", "kws01"], "kws01 (keyword spotting) loads 490 input values"),
    (["--harness", "mlperf", "--mlperf-mode", "fast"], "--mlperf-mode must be one of performance, energy"),
])
def test_cli_mlperf_options_are_one_sentence(shared_models, tmp_path, args, said):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "build", "--board", "mps2-an386", "--model",
                        str(shared_models / "ad01_int8.tflite"), "--runtime", "aot", "--out", str(tmp_path / "o")] + args,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert said in " ".join(r.stderr.split()), r.stderr


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("board", ["mps2-an386", "bbc-microbit"])
def test_the_fit_check_counts_the_dut(board, tmp_path):
    """The DUT's code (more on a core without an FPU, whose float printing is software) and its
    payload buffer are in the fit check: the linked image stays within the estimate."""
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models", "kws_ref_model.tflite")
    if not os.path.exists(shared):
        pytest.skip("the MLPerf Tiny reference models are not at ../shared/models")
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "build", "--board", board, "--model", shared,
                        "--runtime", "aot", "--harness", "mlperf", "--out", str(tmp_path / "fw"), "--compile", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    size = j["size"]
    assert size["text"] + size["data"] <= j["flash"]["total_bytes"]
    assert size["data"] + size["bss"] <= j["sram"]["total_bytes"] - j["sram"]["stack_bytes"]
