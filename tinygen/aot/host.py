"""Build an AOT-compiled model with the host's C compiler and run it on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TinygenError
from ..resources import resource_dir
from . import Compiled, compile
from .lower import KERNEL_DIR, Program


class HostRunError(TinygenError):
    """The host build of an AOT model failed."""


@dataclass
class HostModel:
    """A compiled host executable for one model: (dtype, shape) of each input and output."""
    exe: Path
    inputs: list[tuple[np.dtype, tuple[int, ...]]]
    outputs: list[tuple[np.dtype, tuple[int, ...]]]
    workdir: Path

    @property
    def input_dtype(self) -> np.dtype:
        return self.inputs[0][0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs[0][1]

    def run(self, inputs) -> tuple[np.ndarray | list[np.ndarray], float]:
        """Outputs for a batch of inputs (an array, or one array per model input), and the
        wall-clock nanoseconds per inference. One output: an array; several: a list."""
        batches = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(batches) != len(self.inputs):
            raise HostRunError(f"The model takes {len(self.inputs)} inputs, not {len(batches)}.")
        arrays = [np.asarray(b, dtype=dt).reshape((-1,) + shape) for b, (dt, shape) in zip(batches, self.inputs)]
        n = len(arrays[0])
        fin, fout = self.workdir / "inputs.bin", self.workdir / "outputs.bin"
        fin.write_bytes(b"".join(a[i].tobytes() for i in range(n) for a in arrays))
        r = subprocess.run([str(self.exe), str(fin), str(fout)], capture_output=True, text=True)
        if r.returncode != 0:
            raise HostRunError(f"The host build of the model failed to run (exit {r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[:200]}")
        fields = dict(kv.split("=") for kv in r.stdout.split())
        raw = fout.read_bytes()
        sizes = [int(np.prod(shape)) * np.dtype(dt).itemsize for dt, shape in self.outputs]
        per = sum(sizes)
        outs = []
        for k, (dt, shape) in enumerate(self.outputs):
            at = sum(sizes[:k])
            chunks = b"".join(raw[i * per + at:i * per + at + sizes[k]] for i in range(n))
            outs.append(np.frombuffer(chunks, dtype=dt).reshape((n,) + shape))
        return (outs[0] if len(outs) == 1 else outs), float(fields["ns_per_inference"])


def compiler() -> str:
    cc = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        raise HostRunError("No C compiler found for --board host: install gcc or clang, or set CC.")
    return cc


def build_host(files: dict[str, str], program: Program, workdir: Path | None = None,
               opt: str = "-O2", emulate_dsp: bool = False) -> HostModel:
    """Compile tg_model.c, the kernels it calls and the host runner into one executable.
    emulate_dsp: the kernels' Cortex-M DSP paths, with the instructions written in C (tests)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="tinygen-host-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_text(text)
    runner = resource_dir("firmware") / KERNEL_DIR / "tg_run_host.c"
    flags = [compiler(), "-std=c99", opt, "-Wall", *(["-DTG_EMULATE_DSP"] if emulate_dsp else []), f"-I{workdir}"]
    headers = "".join(f"{n}\n{files[n]}" for n in sorted(files) if n.endswith(".h") and n != "tg_model.h")
    kernels = [_kernel_object(flags, workdir / s, headers, workdir) for s in program.sources]
    exe = workdir / "tg_model_host"
    r = subprocess.run([*flags, str(workdir / "tg_model.c"), str(runner), *map(str, kernels), "-lm", "-o", str(exe)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise HostRunError(f"The host C compiler failed: {r.stderr.strip()[:400]}")
    g = program.graph
    io = lambda t: (np.dtype(np.float32 if g.tensors[t].dtype == "FLOAT32" else np.int8), tuple(g.tensors[t].shape))  # noqa: E731
    return HostModel(exe, [io(t) for t in program.inputs], [io(t) for t in program.outputs], workdir)


def _kernel_object(flags: list[str], source: Path, headers: str, workdir: Path) -> Path:
    """A kernel file compiled once per content, flags and headers (a model's run links the same
    kernels as the last one's: the tests build hundreds), kept in a private folder in the temp
    folder like a compiler cache; written under a temporary name and renamed, so a half-written
    object is never used. Where that folder is not this user's alone, the object is built in
    `workdir` instead (an object another user planted would be linked and run)."""
    import hashlib

    # the -I of the model's own folder is left out: the headers' text stands for it
    same = [f for f in flags if f != f"-I{workdir}"]
    key = hashlib.sha256("\0".join([*same, source.read_text(), headers]).encode()).hexdigest()[:32]
    cache = Path(tempfile.gettempdir()) / f"tinygen-host-objects-{os.getuid() if hasattr(os, 'getuid') else 0}"
    try:
        cache.mkdir(mode=0o700, exist_ok=True)
        st = cache.lstat()
        mine = cache.is_dir() and not cache.is_symlink() and (not hasattr(os, "getuid") or st.st_uid == os.getuid())
        if mine and st.st_mode & 0o077:
            os.chmod(cache, 0o700)      # ours, made private; what others could write into is not used
        private = mine and not st.st_mode & 0o022
    except OSError:
        private = False
    folder = cache if private else workdir
    obj = folder / f"{source.stem}-{key}.o"
    if obj.exists():
        return obj
    fd, tmp = tempfile.mkstemp(suffix=".o", dir=folder)
    os.close(fd)
    r = subprocess.run([*flags, "-c", str(source), "-o", tmp], capture_output=True, text=True)
    if r.returncode != 0:
        os.unlink(tmp)
        raise HostRunError(f"The host C compiler failed: {r.stderr.strip()[:400]}")
    os.replace(tmp, obj)
    return obj


def compile_model(model_bytes: bytes, name: str, workdir: Path | None = None,
                  match: str = "tflm", emulate_dsp: bool = False, lut_bits: int | None = None) -> tuple[HostModel, Compiled]:
    """Compile the model ahead of time and build it for this machine."""
    from ..model.graph import parse

    compiled = compile(parse(model_bytes, name), model_bytes, match, name, lut_bits)
    return build_host(compiled.files, compiled.program, workdir, emulate_dsp=emulate_dsp), compiled
