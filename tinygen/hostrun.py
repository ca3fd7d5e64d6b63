"""Build an AOT-compiled model with the host's C compiler and run it on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import aot
from .errors import TinygenError
from .resources import resource_dir


class HostRunError(TinygenError):
    """The host build of an AOT model failed."""


@dataclass
class HostModel:
    """A compiled host executable for one model, with its I/O layout."""
    exe: Path
    input_dtype: np.dtype
    input_shape: tuple[int, ...]
    output_dtype: np.dtype
    output_shape: tuple[int, ...]
    workdir: Path

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, float]:
        """Outputs for a batch of inputs, and wall-clock nanoseconds per inference."""
        x = np.ascontiguousarray(np.asarray(inputs, dtype=self.input_dtype).reshape((-1,) + self.input_shape))
        fin, fout = self.workdir / "inputs.bin", self.workdir / "outputs.bin"
        fin.write_bytes(x.tobytes())
        r = subprocess.run([str(self.exe), str(fin), str(fout)], capture_output=True, text=True)
        if r.returncode != 0:
            raise HostRunError(f"The host build of the model failed to run (exit {r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[:200]}")
        fields = dict(kv.split("=") for kv in r.stdout.split())
        out = np.frombuffer(fout.read_bytes(), dtype=self.output_dtype).reshape((len(x),) + self.output_shape)
        return out, float(fields["ns_per_inference"])


def compiler() -> str:
    cc = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        raise HostRunError("No C compiler found for --board host: install gcc or clang, or set CC.")
    return cc


def build_host(files: dict[str, str], program: aot.Program, workdir: Path | None = None,
               opt: str = "-O2") -> HostModel:
    """Compile tg_model.c, the kernels it calls and the host runner into one executable."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="tinygen-host-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_text(text)
    runner = resource_dir("firmware") / aot.KERNEL_DIR / "tg_run_host.c"
    sources = [workdir / "tg_model.c", runner] + [workdir / s for s in program.sources]
    exe = workdir / "tg_model_host"
    cmd = [compiler(), "-std=c99", opt, "-Wall", f"-I{workdir}", *map(str, sources), "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise HostRunError(f"The host C compiler failed: {r.stderr.strip()[:400]}")
    g = program.graph
    tin, tout = g.tensors[program.inputs[0]], g.tensors[program.outputs[0]]
    dt = lambda t: np.dtype(np.float32 if t.dtype == "FLOAT32" else np.int8)  # noqa: E731
    return HostModel(exe, dt(tin), tuple(tin.shape), dt(tout), tuple(tout.shape), workdir)


def compile_model(model_bytes: bytes, name: str, workdir: Path | None = None) -> tuple[HostModel, aot.Program, aot.ArenaPlan]:
    from .analyze import parse

    graph = parse(model_bytes, name)
    program = aot.lower(graph, model_bytes)
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    files = aot.render(program, arena, name)
    files.update(aot.kernel_sources(program))
    return build_host(files, program, workdir), program, arena
