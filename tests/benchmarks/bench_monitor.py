"""Monitor figures: the parser's throughput, and lines lost streaming through a pty at the
byte rate of a given baud rate, optionally with a disconnect in the middle.

    python tests/benchmarks/bench_monitor.py --lines 1000000 --baud 921600 [--disconnect]

Prints figures; asserts nothing."""

import argparse
import os
import tempfile
import threading
import time
import tty
from pathlib import Path

from tinygen.device.monitor import Monitor
from tinygen.device.protocol import format_line, parse_line


def parser_throughput(n: int = 200_000) -> float:
    lines = [format_line("inf", seq=i, cycles=1234567, us=25720, top=i % 10, score_milli=987).encode() for i in range(1000)]
    t = time.perf_counter()
    for i in range(n):
        parse_line(lines[i % 1000])
    return n / (time.perf_counter() - t)


def stream(total: int, baud: int, disconnect: bool) -> dict:
    link = Path(tempfile.mkdtemp()) / "ttyBENCH"
    state = {}

    def plug():
        m, s = os.openpty()
        tty.setraw(s)
        tmp = link.with_name("new")
        tmp.symlink_to(os.ttyname(s))
        tmp.replace(link)
        state.update(m=m, s=s)

    def unplug():
        link.unlink()
        os.close(state["m"])
        os.close(state["s"])

    plug()
    bytes_per_s = baud / 10  # 8N1: ten bits a byte
    sent = {"lines": 0, "dropped_while_unplugged": 0}

    def device():
        time.sleep(1.0)
        start = time.monotonic()
        nbytes = 0
        batch = []
        for i in range(total):
            if disconnect and i == total // 2:
                unplug()
                time.sleep(1.0)   # a board reset: nothing can be sent while it is away
                plug()
                time.sleep(1.0)
                start, nbytes = time.monotonic(), 0
            batch.append(format_line("inf", seq=i, cycles=1234567, us=25720, top=i % 10, score_milli=987).encode())
            if len(batch) == 64 or i == total - 1:
                data = b"".join(batch)
                batch.clear()
                # pace to the wire's byte rate
                nbytes += len(data)
                ahead = nbytes / bytes_per_s - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
                view = memoryview(data)
                while view:
                    n = os.write(state["m"], view)
                    view = view[n:]
                sent["lines"] = i + 1

    threading.Thread(target=device, daemon=True).start()
    t = time.monotonic()
    stats = Monitor(str(link), baud, reconnect_wait=0.05).run(count=total, duration=total * 70 / bytes_per_s + 60)
    return {"lines": total, "received": stats.inferences, "lost": total - stats.inferences, "bad_lines": stats.bad_lines,
            "reconnects": stats.reconnects, "seconds": round(time.monotonic() - t, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--baud", type=int, default=921_600)
    ap.add_argument("--disconnect", action="store_true")
    a = ap.parse_args()
    print(f"parser: {parser_throughput():,.0f} lines/s")
    print(f"stream: {stream(a.lines, a.baud, a.disconnect)}")


if __name__ == "__main__":
    main()
