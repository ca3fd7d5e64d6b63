"""Time to flash an image to the simulated Ambiq bootloader, paced to the wire at a baud
rate, next to the theoretical minimum (every byte sent and received, 10 bits each, no gaps).

    python tests/benchmarks/bench_flash.py [--kib 300] [--baud 921600]"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ambiq_sim import SimulatedBootloader  # noqa: E402
from tinygen.boards import load_board  # noqa: E402
from tinygen.runners import IO, get_runner  # noqa: E402
from tinygen.runners.core import Image  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kib", type=int, default=300)
    ap.add_argument("--baud", type=int, default=921600)
    a = ap.parse_args()
    data = bytes(i & 0xFF for i in range(a.kib * 1024))
    sim = SimulatedBootloader(baud=a.baud)
    sim.start()
    io = IO(verbose=False, say=lambda t: None)
    runner = get_runner("ambiq-uart")(load_board("sparkfun-edge"), io, sim.path, a.baud, timeout=5.0)
    t = time.monotonic()
    result = runner.flash(Image(data, 0xC000, Path("fw.bin"), "bin"), lambda d, n: None)
    took = time.monotonic() - t
    sim.close()
    replies = sim.messages * 20 + 68      # 20-byte acks, the 88-byte status
    wire = result.bytes_written + sim.messages * 8 + replies
    minimum = wire * 10 / a.baud
    print(f"image {len(data):,} B -> {result.bytes_written:,} B of blobs in {sim.messages} messages; "
          f"{wire:,} B on the wire both ways")
    print(f"flash took {took:.2f} s; theoretical minimum at {a.baud} baud {minimum:.2f} s; ratio {took / minimum:.2f}")
    assert sim.errors == [], sim.errors


if __name__ == "__main__":
    main()
