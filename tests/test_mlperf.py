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


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_the_c_dut_speaks_the_protocol(tmp_path):
    fw = resource_dir("firmware")
    (tmp_path / "host.c").write_text(r'''
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "mlperf_dut.h"
#include "tinygen_board.h"
void board_serial_write(const char* d, size_t n) { fwrite(d, 1, n, stdout); fflush(stdout); }
int board_serial_read(void) { int c = getchar(); if (c == EOF) board_exit(0); return c; }
uint64_t board_micros(void) { static uint64_t t = 0; return t += 500; }
void board_exit(int code) { _exit(code); }
static uint8_t loaded[16]; static size_t n_loaded;
static void load(const uint8_t* b, size_t n) { memcpy(loaded, b, n); n_loaded = n; }
static int infer(void) { return 0; }
static size_t results(float* out, size_t max) {
  for (size_t i = 0; i < n_loaded && i < max; i++) out[i] = (float)(int8_t)loaded[i] / 8.0f;
  return n_loaded < max ? n_loaded : max;
}
int main(void) {
  static uint8_t buf[16];
  const mlperf_model_t m = {load, infer, results, "toy01"};
  mlperf_dut_run(&m, buf, sizeof(buf));
}''')
    exe = tmp_path / "dut"
    subprocess.run(["cc", "-std=gnu99", "-Wall", "-Werror", "-include", "unistd.h", f"-I{fw / 'common'}",
                    f"-I{fw / 'include'}", tmp_path / "host.c", fw / "common/mlperf_dut.c", "-o", exe], check=True)
    proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        c = MlperfDut(PipePort(proc), timeout=5)
        assert c.sync() == "dut [tinygen]"
        assert c.profile()["model"] == "toy01"
        c.load(bytes([8, 0xF8, 0x40, 0x7F]))          # 1.0, -1.0, 8.0, 15.875
        r = c.infer(4, 1)
        assert r.results == [1.0, -1.0, 8.0, 15.875]
        assert r.total_us == 500                       # two laps, 500 us apart on the fake clock
        with pytest.raises(MlperfError, match="must be >0 bytes"):
            c.command("db load 0")
        with pytest.raises(MlperfError, match="exceeds maximum of 16"):
            c.command("db load 17")
        with pytest.raises(MlperfError, match="Unknown command: dance"):
            c.command("dance")
    finally:
        proc.kill()
