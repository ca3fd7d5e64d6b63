"""Mutated .tflite files against tinygen: every one either verifies or is a ModelError, the CLI
ends each with one `error:` sentence (never a traceback or a signal), and tinygen's verdict
agrees with the tflite-micro interpreter's, run in child processes because it crashes.

The cases are seeded: the same TINYGEN_FUZZ_SEED gives the same files. TINYGEN_FUZZ_CASES sets
how many in-process cases run (the CLI and interpreter samples grow with it).
`python tests/benchmarks/bench_fuzz.py` prints the counts per family and outcome."""

from __future__ import annotations

import copy
import os
import struct
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tflite_builder import OPS, random_model  # noqa: E402

SHARED = HERE.parents[1] / "shared" / "models"
SHARED_INT8 = ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite", "vww_96_int8.tflite"]
CASES = int(os.environ.get("TINYGEN_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("TINYGEN_FUZZ_SEED", "20240607"))

# Byte-level families damage the file itself; the others change one thing in a well-formed model.
BYTE_FAMILIES = ["byte_flip", "truncate", "offset_huge"]
MODEL_FAMILIES = ["tensor_type", "shape", "quantization", "buffer_index", "buffer_size", "tensor_index",
                  "opcode", "options", "multiplier"]
FAMILIES = BYTE_FAMILIES + MODEL_FAMILIES


@dataclass
class Case:
    family: str
    base: str
    detail: str
    data: bytes

    @property
    def label(self) -> str:
        return f"{self.family} {self.base}: {self.detail}"


# --- the models mutated -----------------------------------------------------------------

@lru_cache(maxsize=None)
def base_models() -> dict[str, bytes]:
    """The four MLPerf Tiny int8 models (when present) and two seeded one-op models per op."""
    models = {}
    if SHARED.is_dir():
        models.update({n: (SHARED / n).read_bytes() for n in SHARED_INT8})
    rng = np.random.default_rng(SEED)
    for op in OPS:
        for k in range(2):
            models[f"{op.lower()}_{k}"] = random_model(op, rng)
    return models


@lru_cache(maxsize=None)
def _unpacked(name: str) -> s.ModelT:
    return s.ModelT.InitFromPackedBuf(bytearray(base_models()[name]), 0)


def _pack(m: s.ModelT) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _builtin(m: s.ModelT, o: s.OperatorT) -> int:
    oc = m.operatorCodes[o.opcodeIndex]
    return max(oc.builtinCode, oc.deprecatedBuiltinCode)


_OP_NAMES = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
_TYPES = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
_OPTIONS = {v: k for k, v in vars(s.BuiltinOptions).items() if not k.startswith("_")}


# --- byte-level families ------------------------------------------------------------------

def _byte_flip(rng, name: str) -> tuple[str, bytes]:
    b = bytearray(base_models()[name])
    where = []
    for _ in range(int(rng.integers(1, 4))):
        # half of the flips land on the tables (an offset, a vtable, a length, and the bytes after
        # them), the rest anywhere: mostly weights, which any value is valid for
        if rng.random() < 0.5:
            _, pos, _ = _positions(name)[int(rng.integers(0, len(_positions(name))))]
            i = min(len(b) - 1, pos + int(rng.integers(0, 8)))
        else:
            i = int(rng.integers(0, len(b)))
        v = int(rng.integers(0, 256))
        where.append(f"[{i}]={v:#04x}")
        b[i] = v
    return "bytes " + " ".join(where), bytes(b)


def _truncate(rng, data: bytes) -> tuple[str, bytes]:
    n = int(rng.integers(0, len(data)))
    return f"cut to {n} of {len(data)} bytes", data[:n]


def _offset_positions(data: bytes) -> list[tuple[str, int, str]]:
    """(what, byte position, kind) of the offsets and vector lengths in a model: uoffset (u32),
    soffset (a table's i32 to its vtable), length (a vector's u32 count)."""
    buf = bytearray(data)
    m = s.Model.GetRootAs(buf, 0)
    out = [("the root offset", 0, "uoffset"), ("the model's vtable", m._tab.Pos, "soffset")]

    def fields(name, tab, slots):
        for slot in slots:
            o = tab.Offset(4 + 2 * slot)
            if o:
                out.append((f"{name} field {slot}", tab.Pos + o, "uoffset"))
                start = tab.Vector(o) if slot in vectors.get(name.split(" ")[0], ()) else None
                if start is not None:
                    out.append((f"{name} field {slot} length", start - 4, "length"))

    vectors = {"model": (1, 2, 4, 5, 6), "subgraph": (0, 1, 2, 3), "tensor": (0,), "operator": (1, 2),
               "buffer": (0,), "quantization": (2, 3)}
    fields("model", m._tab, range(1, 8))   # slot 0 is the version, a scalar
    for si in range(m.SubgraphsLength()):
        sg = m.Subgraphs(si)
        out.append((f"subgraph {si}'s vtable", sg._tab.Pos, "soffset"))
        fields(f"subgraph {si}", sg._tab, range(5))
        for ti in range(sg.TensorsLength()):
            t = sg.Tensors(ti)
            fields(f"tensor {ti}", t._tab, (0, 3, 4))
            out.append((f"tensor {ti}'s vtable", t._tab.Pos, "soffset"))
            q = t.Quantization()
            if q is not None:
                fields(f"quantization of tensor {ti}", q._tab, (2, 3))
        for oi in range(sg.OperatorsLength()):
            o = sg.Operators(oi)
            fields(f"operator {oi}", o._tab, (1, 2, 4))
            out.append((f"operator {oi}'s vtable", o._tab.Pos, "soffset"))
    for bi in range(m.BuffersLength()):
        bt = m.Buffers(bi)
        fields(f"buffer {bi}", bt._tab, (0,))
    for ci in range(m.OperatorCodesLength()):
        out.append((f"operator code {ci}'s vtable", m.OperatorCodes(ci)._tab.Pos, "soffset"))
    return out


@lru_cache(maxsize=None)
def _positions(name: str) -> list[tuple[str, int, str]]:
    return _offset_positions(base_models()[name])


def _offset_huge(rng, name: str) -> tuple[str, bytes]:
    data = base_models()[name]
    what, pos, kind = _positions(name)[int(rng.integers(0, len(_positions(name))))]
    value = int(rng.choice([0x7FFFFFF0, 0xFFFFFFFF, len(data), len(data) - pos, 0x40000000, 1, 3]))
    if kind == "soffset":
        value = int(rng.choice([0x7FFFFFF0, -0x7FFFFFF0, pos + 1, -len(data), 2]))
        b = bytearray(data)
        struct.pack_into("<i", b, pos, value)
    else:
        b = bytearray(data)
        struct.pack_into("<I", b, pos, value & 0xFFFFFFFF)
    return f"{what} set to {value:#x}", bytes(b)


# --- model-level families ------------------------------------------------------------------

def _pick_tensor(rng, sg, pred=lambda t: True) -> int | None:
    ids = [i for i, t in enumerate(sg.tensors) if pred(t)]
    return int(rng.choice(ids)) if ids else None


def _tensor_type(rng, m) -> str:
    sg = m.subgraphs[0]
    i = _pick_tensor(rng, sg)
    t = sg.tensors[i]
    new = int(rng.choice(sorted(_TYPES) + [30, 99, 127]))
    old = t.type
    t.type = new
    return f"tensor {i} type {_TYPES.get(old)} -> {_TYPES.get(new, new)}"


def _shape(rng, m) -> str:
    sg = m.subgraphs[0]
    i = _pick_tensor(rng, sg, lambda t: t.shape is not None and len(t.shape) > 0)
    t = sg.tensors[i]
    shape = [int(d) for d in t.shape]
    kind = str(rng.choice(["zero", "negative", "huge", "double", "drop", "add", "overflow", "plus_one"]))
    k = int(rng.integers(0, len(shape)))
    if kind == "zero":
        shape[k] = 0
    elif kind == "negative":
        shape[k] = -int(rng.integers(1, 5))
    elif kind == "huge":
        shape[k] = int(rng.choice([2**31 - 1, 2**20, 2**16 + 1]))
    elif kind == "double":
        shape[k] *= 2
    elif kind == "plus_one":
        shape[k] += 1
    elif kind == "drop":
        shape.pop(k)
    elif kind == "add":
        shape.insert(k, int(rng.integers(1, 4)))
    else:
        shape = [65536, 65536, 2] + shape
    old = [int(d) for d in t.shape]
    t.shape = shape
    return f"tensor {i} shape {old} -> {shape} ({kind})"


def _quantization(rng, m) -> str | None:
    sg = m.subgraphs[0]
    i = _pick_tensor(rng, sg, lambda t: t.quantization is not None and t.quantization.scale is not None
                     and len(t.quantization.scale) > 0)
    if i is None:
        return None
    t = sg.tensors[i]
    q = t.quantization
    scale = [float(v) for v in q.scale]
    zp = [int(v) for v in q.zeroPoint] if q.zeroPoint is not None else []
    kind = str(rng.choice(["scale_zero", "scale_negative", "scale_nan", "scale_inf", "scale_tiny", "scale_huge",
                           "zp_high", "zp_low", "channels_plus", "channels_minus", "axis", "drop", "zp_count"]))
    if kind.startswith("scale"):
        value = {"scale_zero": 0.0, "scale_negative": -abs(scale[0]), "scale_nan": float("nan"),
                 "scale_inf": float("inf"), "scale_tiny": 1e-38, "scale_huge": 3e38}[kind]
        scale[int(rng.integers(0, len(scale)))] = value
        q.scale = scale
    elif kind == "zp_high":
        q.zeroPoint = [int(rng.choice([128, 200, 2**31]))] * max(1, len(zp))
    elif kind == "zp_low":
        q.zeroPoint = [int(rng.choice([-129, -1000]))] * max(1, len(zp))
    elif kind == "channels_plus":
        q.scale = scale + [scale[-1]]
        q.zeroPoint = zp + [0]
    elif kind == "channels_minus":
        q.scale = scale[:-1] if len(scale) > 1 else scale * 3
        q.zeroPoint = zp[:-1] if len(zp) > 1 else zp * 3
    elif kind == "axis":
        q.quantizedDimension = int(rng.choice([-1, 4, 7, 1, 2]))
    elif kind == "drop":
        t.quantization = None
    else:
        q.zeroPoint = zp + [0, 0]
    return f"tensor {i} quantization {kind}"


def _buffer_index(rng, m) -> str:
    sg = m.subgraphs[0]
    i = _pick_tensor(rng, sg)
    t = sg.tensors[i]
    n = len(m.buffers)
    kind = str(rng.choice(["past_end", "huge", "other"]))
    if kind == "past_end":
        t.buffer = n + int(rng.integers(0, 3))
    elif kind == "huge":
        t.buffer = int(rng.choice([2**31, 2**32 - 1, 1_000_000]))
    else:
        t.buffer = int(rng.integers(0, n))
    return f"tensor {i} buffer -> {t.buffer} of {n} ({kind})"


def _buffer_size(rng, m) -> str | None:
    sg = m.subgraphs[0]
    const = [i for i, t in enumerate(sg.tensors)
             if t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data)]
    if not const:
        return None
    i = int(rng.choice(const))
    b = m.buffers[sg.tensors[i].buffer]
    data = np.asarray(b.data, dtype=np.uint8)
    kind = str(rng.choice(["short", "long", "one_byte", "empty"]))
    if kind in ("short", "one_byte") and len(data) <= 1:
        kind = "long"
    if kind == "short":
        b.data = data[: max(1, len(data) - int(rng.integers(1, 8)))]
    elif kind == "long":
        b.data = np.concatenate([data, np.zeros(int(rng.integers(1, 8)), np.uint8)])
    elif kind == "one_byte":
        b.data = data[:1]
    else:
        b.data = data[:0]
    return f"tensor {i} buffer {len(data)} -> {len(b.data)} bytes ({kind})"


def _tensor_index(rng, m) -> str:
    sg = m.subgraphs[0]
    n = len(sg.tensors)
    bad = int(rng.choice([n, n + 5, 2**31 - 1, -2, -1000]))
    where = str(rng.choice(["input", "output", "intermediate", "subgraph_input", "subgraph_output", "optional"]))
    if where in ("input", "output", "intermediate", "optional"):
        k = int(rng.integers(0, len(sg.operators)))
        o = sg.operators[k]
        if where == "input":
            ins = [int(v) for v in o.inputs]
            ins[int(rng.integers(0, len(ins)))] = bad
            o.inputs = ins
        elif where == "optional":
            ins = [int(v) for v in o.inputs]
            ins[0] = -1
            o.inputs = ins
            bad = -1
        elif where == "output":
            outs = [int(v) for v in o.outputs]
            outs[0] = bad
            o.outputs = outs
        else:
            o.intermediates = [bad]
        return f"operator {k} {where} -> {bad}"
    vec = [int(v) for v in (sg.inputs if where == "subgraph_input" else sg.outputs)]
    vec[0] = bad
    if where == "subgraph_input":
        sg.inputs = vec
    else:
        sg.outputs = vec
    return f"{where} -> {bad}"


def _opcode(rng, m) -> str:
    sg = m.subgraphs[0]
    k = int(rng.integers(0, len(sg.operators)))
    o = sg.operators[k]
    kind = str(rng.choice(["index", "code", "unknown_code", "deprecated"]))
    if kind == "index":
        o.opcodeIndex = int(rng.choice([len(m.operatorCodes), len(m.operatorCodes) + 3, 2**32 - 1]))
        return f"operator {k} opcode index -> {o.opcodeIndex}"
    oc = copy.copy(m.operatorCodes[o.opcodeIndex])
    m.operatorCodes.append(oc)
    o.opcodeIndex = len(m.operatorCodes) - 1
    if kind == "code":
        code = int(rng.choice([v for v in _OP_NAMES if v not in (s.BuiltinOperator.CUSTOM,)]))
    elif kind == "unknown_code":
        code = int(rng.choice([250, 1000, 2**31 - 1]))
    else:
        code = int(rng.choice([0, 3, 9, 22, 25, 28, 126, 127]))
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    return f"operator {k} {kind} -> {_OP_NAMES.get(code, code)}"


_OPTION_FIELDS = {
    "strideH": [0, -1, 2**31 - 1], "strideW": [0, -2], "dilationHFactor": [0, -1], "dilationWFactor": [0, 2**20],
    "padding": [2, 7, -1], "fusedActivationFunction": [4, 5, 6, 9], "filterHeight": [0, -3, 1000],
    "filterWidth": [0, 2**20], "depthMultiplier": [0, -1, 3, 1000], "beta": [0.0, -1.0, float("nan"), float("inf")],
    "axis": [-9, 4, 100], "keepDims": [True, False], "weightsFormat": [1, 5], "keepNumDims": [True],
    "asymmetricQuantizeInputs": [True], "potScaleInt16": [True, False],
}


def _options(rng, m) -> str:
    sg = m.subgraphs[0]
    k = int(rng.integers(0, len(sg.operators)))
    o = sg.operators[k]
    kind = str(rng.choice(["field", "field", "field", "none", "wrong_type"]))
    if kind == "none" or o.builtinOptions is None:
        o.builtinOptionsType, o.builtinOptions = 0, None
        return f"operator {k} ({_OP_NAMES.get(_builtin(m, o))}) without options"
    if kind == "wrong_type":
        others = [op for op in sg.operators if op.builtinOptions is not None
                  and op.builtinOptionsType != o.builtinOptionsType]
        if others:
            other = others[int(rng.integers(0, len(others)))]
            o.builtinOptionsType, o.builtinOptions = other.builtinOptionsType, copy.deepcopy(other.builtinOptions)
        else:
            o.builtinOptionsType, o.builtinOptions = s.BuiltinOptions.ReshapeOptions, s.ReshapeOptionsT()
        return f"operator {k} ({_OP_NAMES.get(_builtin(m, o))}) with {_OPTIONS.get(o.builtinOptionsType)}"
    fields = [f for f in vars(o.builtinOptions) if f in _OPTION_FIELDS]
    if not fields:
        o.builtinOptionsType, o.builtinOptions = 0, None
        return f"operator {k} without options"
    f = str(rng.choice(fields))
    v = _OPTION_FIELDS[f][int(rng.integers(0, len(_OPTION_FIELDS[f])))]
    setattr(o.builtinOptions, f, v)
    return f"operator {k} ({_OP_NAMES.get(_builtin(m, o))}) {f} = {v}"


def _multiplier(rng, m) -> str | None:
    """Scales at and around the limits TFLM asserts on: softmax's input scale x beta (the
    degenerate scale of an untrained net), ADD/SUB's output rescale, logistic's input, the
    effective scale of a convolution."""
    sg = m.subgraphs[0]
    named = [(k, _OP_NAMES.get(_builtin(m, o))) for k, o in enumerate(sg.operators)]
    target = [(k, n) for k, n in named if n in ("SOFTMAX", "ADD", "SUB", "LOGISTIC", "MUL", "CONV_2D",
                                                  "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "QUANTIZE")]
    if not target:
        return None
    k, op = target[int(rng.integers(0, len(target)))]
    o = sg.operators[k]
    # which tensor's scale moves: the input for softmax/logistic, the output elsewhere
    t = o.inputs[0] if op in ("SOFTMAX", "LOGISTIC") else o.outputs[0]
    q = sg.tensors[t].quantization
    if q is None or q.scale is None or not len(q.scale):
        return None
    value = float(np.float32(rng.choice([1e-10, 2.0**-26, 2.0**-26 * 1.01, 2.0**-27, 1e-7, 1e-20, 2.0**-29,
                                         4.0**-12, 1e-30, 2e9, 3e4])))
    q.scale = [value] * len(q.scale)
    return f"operator {k} ({op}) tensor {t} scale -> {value:g}"


_MUTATE = {"tensor_type": _tensor_type, "shape": _shape, "quantization": _quantization,
           "buffer_index": _buffer_index, "buffer_size": _buffer_size, "tensor_index": _tensor_index,
           "opcode": _opcode, "options": _options, "multiplier": _multiplier}


def generate(count: int, seed: int = SEED) -> list[Case]:
    """`count` cases, the families in turn, each on a base model drawn at random (the shared
    models take one in twenty model-level cases: unpacking and packing them is slower)."""
    rng = np.random.default_rng(seed)
    models = base_models()
    shared = [n for n in models if n.endswith(".tflite")]
    tiny = [n for n in models if not n.endswith(".tflite")]
    cases = []
    for i in range(count):
        family = FAMILIES[i % len(FAMILIES)]
        pool = shared if shared and (family in BYTE_FAMILIES or rng.random() < 0.05) else tiny
        name = pool[int(rng.integers(0, len(pool)))]
        if family == "byte_flip":
            detail, data = _byte_flip(rng, name)
        elif family == "truncate":
            detail, data = _truncate(rng, models[name])
        elif family == "offset_huge":
            detail, data = _offset_huge(rng, name)
        else:
            detail = None
            while detail is None:   # a model with nothing to mutate (no constant, no softmax): the next one
                m = copy.deepcopy(_unpacked(name))
                detail = _MUTATE[family](rng, m)
                name = pool[int(rng.integers(0, len(pool)))] if detail is None else name
            data = _pack(m)
        cases.append(Case(family, name, detail, data))
    return cases


# --- the tflite-micro interpreter as the oracle, in a child process it may crash ---------

_ORACLE_CHILD = r"""
import os, struct, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
reply = os.fdopen(os.dup(1), "w")
log = open(os.devnull, "wb") if False else __import__("tempfile").TemporaryFile()
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
stdin = sys.stdin.buffer
while True:
    head = stdin.read(8)
    if len(head) < 8:
        break
    n, arena = struct.unpack("<II", head)
    data = stdin.read(n)
    log.seek(0)
    log.truncate()
    verdict = "ok"
    try:
        it = runtime.Interpreter.from_bytes(data, arena_size=arena)
        i = 0
        while True:
            try:
                d = it.get_input_details(i)
            except IndexError:
                break
            it.set_input(np.zeros(d["shape"], d["dtype"]), i)
            i += 1
        it.invoke()
    except Exception as e:
        verdict = "rejected " + type(e).__name__
    sys.stdout.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").replace("\n", " | ")[-400:]
    reply.write(verdict + "\t" + text + "\n")
    reply.flush()
"""


class Oracle:
    """Runs the tflite-micro interpreter (allocate, then invoke once on zeros) in a child
    process that reads models one after another; a crash or a hang costs only a restart.
    verdict(): "ok", "rejected", "crashed" (a signal) or "timeout", and TFLM's own words."""

    ARENA = 32 * 1024 * 1024

    def __init__(self, timeout: float = 20.0):
        self.timeout = timeout
        self.proc = None

    def _start(self):
        env = dict(os.environ, PYTHONPATH="")
        self.proc = subprocess.Popen([sys.executable, "-c", _ORACLE_CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def verdict(self, data: bytes) -> tuple[str, str]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        p = self.proc
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(p.stdout.readline()), daemon=True)
        try:
            p.stdin.write(struct.pack("<II", len(data), self.ARENA) + data)
            p.stdin.flush()
        except BrokenPipeError:
            pass
        reader.start()
        reader.join(self.timeout)
        if reader.is_alive():
            p.kill()
            p.wait()
            self.proc = None
            return "timeout", ""
        if not line or not line[0]:
            code = p.wait()
            self.proc = None
            return "crashed", f"signal {-code}" if code < 0 else f"exit {code}"
        verdict, _, text = line[0].decode().rstrip("\n").partition("\t")
        return ("ok" if verdict == "ok" else "rejected"), text

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.proc = None


# --- what tinygen says about each case ------------------------------------------------------

def verdict(data: bytes, name: str = "model") -> tuple[str, str]:
    """("accepted", "") or ("rejected", the sentence and what TFLM does: aborts, refuses or
    undefined). Anything but a ModelError propagates: that is a failure."""
    from tinygen.errors import ModelError
    from tinygen.model.verify import verify

    try:
        verify(data, name)
    except ModelError as e:
        return "rejected", f"{getattr(e, 'tflm', 'undefined')}: {e}"
    return "accepted", ""


def _sample(cases: list[Case], per_family: int) -> list[Case]:
    """The first `per_family` cases of each family: a deterministic spread over all of them."""
    seen: Counter = Counter()
    out = []
    for c in cases:
        if seen[c.family] < per_family:
            seen[c.family] += 1
            out.append(c)
    return out


def _table(counts: Counter, title: str) -> str:
    """Counts per family (rows) and outcome (columns)."""
    outcomes = sorted({o for _, o in counts})
    widths = [max(len(o), 5) + 2 for o in outcomes]
    rows = [title, "family".ljust(14) + "".join(o.rjust(w) for o, w in zip(outcomes, widths))]
    for fam in FAMILIES:
        rows.append(fam.ljust(14) + "".join(str(counts.get((fam, o), 0)).rjust(w) for o, w in zip(outcomes, widths)))
    return "\n".join(rows)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return generate(CASES)


@pytest.fixture(scope="module")
def oracle():
    o = Oracle()
    yield o
    o.close()


def test_the_cases_are_seeded_and_cover_every_family():
    a, b = generate(2 * len(FAMILIES)), generate(2 * len(FAMILIES))
    assert [c.data for c in a] == [c.data for c in b]
    assert {c.family for c in a} == set(FAMILIES)
    assert len({c.data for c in a}) == len(a)      # every case is a different file


def test_every_case_verifies_or_is_a_model_error(cases):
    """Thousands of mutated models, in this process: verify() accepts or raises ModelError,
    nothing else; and the damage each family is built to do is always caught."""
    counts: Counter = Counter()
    missed = []
    for c in cases:
        outcome, why = verdict(c.data, c.base)
        kind = why.split(":", 1)[0] if why else ""
        counts[(c.family, outcome if outcome == "accepted" else f"rejected:{kind}")] += 1
        if outcome == "accepted" and _must_reject(c):
            missed.append(c.label)
    print("\n" + _table(counts, f"verify() on {len(cases)} cases (seed {SEED})"))
    assert not missed, f"{len(missed)} damaged models verified, e.g. {missed[:5]}"
    for family in FAMILIES:
        assert counts[(family, "accepted")] < sum(n for (f, _), n in counts.items() if f == family), \
            f"no {family} case was rejected: the family mutates nothing that matters"


def _must_reject(c: Case) -> bool:
    """Cases whose damage is certain: an index past the end, an offset past the file, a
    softmax multiplier at or below one, a constant buffer of the wrong size, a zero dimension."""
    d = c.detail
    if c.family == "truncate":
        return int(d.split()[2]) < 8
    if c.family == "offset_huge":
        value = int(d.rsplit(" ", 1)[1], 16)
        return value >= len(base_models()[c.base]) or value < -len(base_models()[c.base])
    if c.family == "buffer_index":
        return "(past_end)" in d or "(huge)" in d
    if c.family == "tensor_index":
        return "optional" not in d
    if c.family == "opcode":
        return "opcode index" in d
    if c.family == "buffer_size":
        return "(empty)" not in d       # an emptied buffer makes the tensor an activation, legitimately
    if c.family == "shape":
        return "(zero)" in d or "(negative)" in d or "(overflow)" in d
    if c.family == "multiplier" and "(SOFTMAX)" in d:
        return float(d.rsplit("-> ", 1)[1]) * 2.0**26 <= 1.0
    return False


def test_verified_models_reach_the_arena_replay_and_the_aot_compiler_with_typed_errors_only(cases):
    """What verify() accepts, the arena replay and the AOT compiler take or refuse with a
    TinygenError (every accepted model-level case, and a share of the byte-level ones)."""
    from tinygen import aot
    from tinygen.errors import TinygenError
    from tinygen.model.graph import parse
    from tinygen.tflm.arena import Target, plan_arena

    untyped, counts, shared = [], Counter(), Counter()
    for c in cases[: max(len(FAMILIES) * 25, CASES // 10)]:
        if verdict(c.data)[0] != "accepted":
            continue
        if c.base.endswith(".tflite"):   # rendering the big models' C takes a quarter second each: a few will do
            shared[c.family] += 1
            if shared[c.family] > 2:
                continue
        try:
            g = parse(c.data, c.base)
            plan_arena(g, Target())
            plan_arena(g, Target("host64", "reference", False, recording=True))
            aot.compile(g, c.data)
            counts[(c.family, "compiled")] += 1
        except TinygenError as e:
            counts[(c.family, type(e).__name__)] += 1
        except Exception as e:  # noqa: BLE001 - the point: nothing untyped gets out
            untyped.append(f"{c.label}: {type(e).__name__}: {e}")
    print("\n" + _table(counts, "verified cases through plan_arena and aot.compile"))
    assert not untyped, "\n".join(untyped[:10])
    assert sum(counts.values()) > 50


# --- the command line, in subprocesses -------------------------------------------------------

def _cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=str(HERE.parent))
    return subprocess.run([sys.executable, "-m", "tinygen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=HERE.parent)


def cli_outcome(r: subprocess.CompletedProcess) -> str:
    """"exit 0", "exit 1", "exit 2" when the run ended as the CLI promises, else what went wrong:
    a signal, a traceback, no sentence or more than one, an unknown exit status."""
    if r.returncode < 0:
        return f"signal {-r.returncode}"
    if "Traceback" in r.stderr or "Traceback" in r.stdout:
        return "traceback"
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    if r.returncode == 1 and len(errors) != 1:
        return f"exit 1 with {len(errors)} error lines"
    if r.returncode == 2 and (errors or "does not fit" not in r.stderr):
        return "exit 2 without its one 'does not fit' line"
    if r.returncode not in (0, 1, 2):
        return f"exit {r.returncode}"
    if r.returncode == 0 and errors:
        return "exit 0 with an error line"
    return f"exit {r.returncode}"


def _run_all(jobs: list[tuple[Case, list[str]]]) -> list[tuple[Case, list[str], subprocess.CompletedProcess]]:
    """Two at a time: the machine has two cores."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(zip([c for c, _ in jobs], [a for _, a in jobs], pool.map(lambda j: _cli(j[1]), jobs)))


def test_the_cli_ends_every_case_with_an_exit_status_and_one_sentence(cases, oracle, tmp_path):
    """`fit` on a spread of cases over every family, `run --board host --runtime aot` on a few:
    exit 0, 1 or 2, never a traceback or a signal, and exactly one `error:` line on exit 1."""
    per_family = max(1, CASES // 3000)
    jobs = []
    for k, c in enumerate(_sample(cases, per_family)):
        path = tmp_path / f"{k}_{c.family}.tflite"
        path.write_bytes(c.data)
        jobs.append((c, ["fit", "--board", "sparkfun-edge", "--model", str(path)]))
    # run: two cases the verifier refuses, one it lets through and TFLM refuses (check_runs' sentence),
    # and with more TINYGEN_FUZZ_CASES, some that go all the way (TFLM, the AOT C, this machine's compiler)
    refused = [c for c in _sample(cases, 1) if verdict(c.data)[0] == "rejected"][:2]
    accepted = [c for c in _sample(cases, 8) if c.family in MODEL_FAMILIES and verdict(c.data)[0] == "accepted"]
    tflm_refuses = [c for c in accepted if oracle.verdict(c.data)[0] != "ok"][:1]
    tflm_runs = [c for c in accepted if c not in tflm_refuses][: CASES // 3000 - 1]
    assert tflm_refuses, "no case the verifier accepts and TFLM refuses: the sample is too small"
    for k, c in enumerate(refused + tflm_refuses + tflm_runs):
        path = tmp_path / f"run{k}_{c.family}.tflite"
        path.write_bytes(c.data)
        jobs.append((c, ["run", "--board", "host", "--runtime", "aot", "--model", str(path)]))
    results = _run_all(jobs)
    counts: Counter = Counter()
    broken = []
    for c, args, r in results:
        outcome = cli_outcome(r)
        counts[(c.family, f"{args[0]}: {outcome}")] += 1
        if outcome not in ("exit 0", "exit 1", "exit 2"):
            broken.append(f"{args[0]} {c.label}: {outcome}\n{r.stderr[-800:]}")
    print("\n" + _table(counts, f"the CLI on {len(results)} cases"))
    assert not broken, "\n".join(broken)
    assert any(o.endswith("exit 1") for (_, o) in counts), "no case was refused"


# --- the tflite-micro interpreter as the judge ----------------------------------------------

def test_the_verdict_agrees_with_the_tflite_micro_interpreter(cases, oracle):
    """Each case in the tflite-micro interpreter (allocate, invoke once), in a child process:
    - a model verify() accepts never crashes TFLM (nothing it lets through aborts or faults);
    - where verify() says TFLM aborts or refuses, TFLM does not run it;
    - where verify() accepts and TFLM refuses, check_runs() says so, in TFLM's words (or names
      the op TFLM does not implement);
    - where verify() refuses what TFLM runs, the reason is one of those TFLM does not check
      (out-of-bounds indices and sizes, meaningless options and scales: "undefined"), counted."""
    from tinygen.errors import ModelError, UnsupportedOpError
    from tinygen.model.graph import parse
    from tinygen.tflm.interpreter import check_runs

    sample = _sample(cases, max(12, CASES // 250))
    counts: Counter = Counter()
    wrong, refused_by_tflm = [], []
    for c in sample:
        ours, why = verdict(c.data, c.base)
        theirs, text = oracle.verdict(c.data)
        tflm = why.split(":", 1)[0] if why else ""
        counts[(c.family, f"{ours[:3]}{':' + tflm if tflm else ''}/TFLM {theirs}")] += 1
        if ours == "accepted" and theirs in ("crashed", "timeout"):
            wrong.append(f"accepted, TFLM {theirs} ({text}): {c.label}")
        if ours == "rejected" and tflm in ("aborts", "refuses") and theirs == "ok":
            wrong.append(f"said TFLM {tflm}, TFLM ran it: {c.label}: {why}")
        if ours == "accepted" and theirs == "rejected":
            refused_by_tflm.append((c, text))
    # what the verifier leaves to TFLM, TFLM's own check names (a few: each is a child process),
    # or, for an op TFLM has no kernel for, the table of the ops it implements
    for c, text in refused_by_tflm[:6]:
        with pytest.raises((ModelError, UnsupportedOpError),
                           match="TensorFlow Lite Micro (refuses|crashes|does not implement)"):
            check_runs(c.data, parse(c.data, c.base), c.base)
    print("\n" + _table(counts, f"verify() and the tflite-micro interpreter on {len(sample)} cases"))
    assert not wrong, "\n".join(wrong[:10])
    assert any("TFLM crashed" in o for (_, o) in counts), "the sample holds no case that crashes TFLM"


# --- the limits TFLM asserts on, on both sides --------------------------------------------------

def _softmax(scale: float, beta: float = 1.0) -> bytes:
    from tflite_builder import OneOp

    m = OneOp()
    x = m.tensor([1, 10], scale=scale, zero_point=0)
    y = m.tensor([1, 10], scale=1 / 256, zero_point=-128)
    return m.model("SOFTMAX", [x], [y], beta=beta)


def _add(scale_a: float, scale_b: float, scale_out: float) -> bytes:
    from tflite_builder import OneOp

    m = OneOp()
    a = m.tensor([1, 8], scale=scale_a, zero_point=3)
    b = m.tensor([1, 8], scale=scale_b, zero_point=-5)
    y = m.tensor([1, 8], scale=scale_out, zero_point=0)
    return m.model("ADD", [a, b], [y], fusedActivationFunction=0)


LIMIT_CASES = {
    # softmax: input scale x beta x 2^26 must be above 1 (QuantizeMultiplierGreaterThanOne)
    "softmax at an untrained MobileNetV2's scale": (_softmax(7.84314e-09), False),
    "softmax at exactly 2^-26": (_softmax(2.0**-26), False),
    "softmax at 2^-27 with beta 2": (_softmax(2.0**-27, 2.0), False),
    "softmax just above 2^-26": (_softmax(2.0**-26 * 1.0001), True),
    "softmax at 2^-26 with beta 1.5": (_softmax(2.0**-26, 1.5), True),
    # add: 2 x the larger input scale / (2^20 x output scale) must be below 1
    "add with an output scale of 2^-20 of the inputs'": (_add(0.5, 0.25, 2.0**-20), False),
    "add with an output scale just above 2^-19 of the inputs'": (_add(0.5, 0.25, 2.0**-20 * 1.0001), True),
}


@pytest.mark.parametrize("case", list(LIMIT_CASES))
def test_the_multiplier_limits_are_tflms_own(case, oracle):
    """On each side of the limit: verify() refuses exactly what makes TFLM abort."""
    data, runs = LIMIT_CASES[case]
    ours, why = verdict(data, "m.tflite")
    theirs, text = oracle.verdict(data)
    if runs:
        assert (ours, theirs) == ("accepted", "ok"), (why, text)
    else:
        assert ours == "rejected" and why.startswith("aborts:"), why
        assert (theirs, text) == ("crashed", "signal 6"), "TFLM was expected to abort (SIGABRT)"


def test_a_degenerate_softmax_is_one_sentence_naming_the_op_the_scale_and_the_limit(tmp_path):
    """The softmax input scale an untrained MobileNetV2 (alpha 0.35, 96x96x3, 2 classes) gets
    from the converter, 7.84e-9: `tinygen build` says so instead of TFLM aborting (the full
    MobileNetV2 takes two minutes to convert: tests/benchmarks/bench_fuzz.py --mobilenet)."""
    path = tmp_path / "untrained.tflite"
    path.write_bytes(_softmax(7.84314e-09))
    r = _cli(["build", "--board", "sparkfun-edge", "--model", str(path), "--out", str(tmp_path / "out")])
    assert cli_outcome(r) == "exit 1", r.stderr
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "SOFTMAX (operator 0)" in line and "7.84314e-09" in line and "2^-26" in line, line
    assert not (tmp_path / "out").exists()


# --- check_runs: what the verifier leaves to TFLM ------------------------------------------------

def _pool_with_two_scales() -> bytes:
    """AVERAGE_POOL_2D whose output scale differs from its input's: well formed, and TFLM's
    Prepare refuses it (pooling_common.cc), which verify() leaves to TFLM."""
    from tflite_builder import OneOp

    m = OneOp()
    x = m.tensor([1, 4, 4, 2], scale=0.5, zero_point=0)
    y = m.tensor([1, 2, 2, 2], scale=0.25, zero_point=0)
    return m.model("AVERAGE_POOL_2D", [x], [y], padding=1, strideH=2, strideW=2, filterHeight=2, filterWidth=2,
                   fusedActivationFunction=0)


def test_check_runs_says_what_tflm_refuses_in_its_own_words():
    from tinygen.errors import ModelError
    from tinygen.model.graph import parse
    from tinygen.tflm.interpreter import check_runs, int8_predict

    data = _pool_with_two_scales()
    g = parse(data, "pool.tflite")
    with pytest.raises(ModelError) as e:
        check_runs(data, g, "pool.tflite")
    assert str(e.value).startswith("TensorFlow Lite Micro refuses pool.tflite: AVERAGE_POOL_2D (operator 0) fails "
                                   "to prepare (pooling_common.cc:"), str(e.value)
    with pytest.raises(ModelError, match="TensorFlow Lite Micro refuses"):    # not a RuntimeError
        int8_predict(data, g, np.zeros((1, 1, 4, 4, 2), np.float32))
    ok = random_model("CONV_2D", np.random.default_rng(5))
    check_runs(ok, parse(ok, "conv.tflite"), "conv.tflite")


def test_a_crash_in_the_child_is_a_sentence_naming_the_signal():
    """TFLM aborting on a model (a softmax scale verify() would refuse, handed to check_runs
    directly with the graph of its valid twin) is a ModelError here, and this process lives."""
    import dataclasses
    import hashlib

    from tinygen.errors import ModelError
    from tinygen.model.graph import parse
    from tinygen.tflm.interpreter import check_runs

    bad = _softmax(2.0**-27)
    twin = dataclasses.replace(parse(_softmax(0.1), "twin.tflite"), sha256=hashlib.sha256(bad).hexdigest())
    with pytest.raises(ModelError) as e:
        check_runs(bad, twin, "untrained.tflite")
    assert str(e.value).startswith("TensorFlow Lite Micro crashes (SIGABRT) on untrained.tflite while allocating its "
                                   "tensors"), str(e.value)
