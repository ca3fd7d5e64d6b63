"""Fuzzing the data files tinygen reads (`--data`, `--val`, `monitor --send`): mutated .npz and
.npy files through load_data and conform in-process, and a sample of them through the CLI.

Every case either loads, and then what it gives is sane (finite samples of the model's shape,
labels that are classes of the model, nothing dropped, nothing changed behind a checksum), or is
refused with a DataError. Nothing else: no other exception, no crash, no silent guess.

Seeded, so a failure names a case that can be replayed. TINYGEN_FUZZ_CASES (default 3000, over
all families) runs more."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tinygen.device.monitor import samples_to_send
from tinygen.errors import DataError, TinygenError
from tinygen.model import data

SHAPE = (1, 8, 8, 1)          # the bundled digits model's input
CLASSES = 10
CASES = int(os.environ.get("TINYGEN_FUZZ_CASES", "3000"))
KWS_SHAPE, KWS_CLASSES = (1, 49, 10, 1), 12   # the shared KWS model: int8 already, `fit` needs no TensorFlow


@dataclass
class Case:
    family: str
    name: str                 # what was done to the file, for a failure message
    content: bytes
    suffix: str               # ".npz" or ".npy"
    must: str                 # "load", "refuse" or "either"
    x: np.ndarray | None = None   # what a load must give back, where a checksum guards the bytes
    y: np.ndarray | None = None
    labelled: bool = False    # the file holds labels: a load without them drops them silently


# --- making files -------------------------------------------------------------------------

def npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=allow_pickle)
    return b.getvalue()


def npz(compressed: bool = False, **arrays) -> bytes:
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return b.getvalue()


def npy_header(header: str, payload: bytes, version: tuple[int, int] = (1, 0), header_len: int | None = None) -> bytes:
    """An .npy with any header text, true or not, padded the way numpy pads it."""
    text = header + " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    n = len(text) if header_len is None else header_len
    return b"\x93NUMPY" + bytes(version) + struct.pack("<H", n) + text.encode("latin1") + payload


def good(rng, shape, classes, n=None):
    n = int(rng.integers(1, 6)) if n is None else n
    return rng.random((n,) + shape[1:]).astype(np.float32), rng.integers(0, classes, n)


def mutate(rng, raw: bytes) -> tuple[str, bytes]:
    b = bytearray(raw)
    op = int(rng.integers(5))
    if op == 0:
        k = int(rng.integers(1, 5))
        for i in rng.integers(0, len(b), k):
            b[i] ^= int(rng.integers(1, 256))
        return f"flip {k} bytes", bytes(b)
    if op == 1:
        cut = int(rng.integers(0, len(b)))
        return f"truncate to {cut}", bytes(b[:cut])
    if op == 2:
        i = int(rng.integers(0, len(b)))
        n = int(rng.integers(1, 64))
        b[i:i + n] = rng.integers(0, 256, len(b[i:i + n]), dtype=np.uint8).tobytes()
        return f"overwrite {n} at {i}", bytes(b)
    if op == 3:
        i = int(rng.integers(0, len(b)))
        return f"insert at {i}", bytes(b[:i]) + rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes() + bytes(b[i:])
    i = int(rng.integers(0, len(b)))
    n = int(rng.integers(1, 64))
    return f"delete {n} at {i}", bytes(b[:i] + b[i + n:])


# --- the families ---------------------------------------------------------------------------

def fam_zip(rng, shape, classes):
    """A good .npz, damaged: the zip's checksums must catch it, or the arrays come back as saved."""
    x, y = good(rng, shape, classes)
    name, raw = mutate(rng, npz(bool(rng.integers(2)), x=x, y=y))
    return Case("zip", name, raw, ".npz", "refuse" if name.startswith("truncate") else "either", x, y, True)


def fam_npy(rng, shape, classes):
    """A good .npy, damaged. No checksum: changed values may load, but never insane ones."""
    x, _ = good(rng, shape, classes)
    raw = npy(x)
    op = int(rng.integers(4))
    if op == 0:
        cut = int(rng.integers(0, len(raw)))
        return Case("npy", f"truncate to {cut}", raw[:cut], ".npy", "refuse")
    if op == 1:
        return Case("npy", "append junk", raw + rng.integers(0, 256, 40, dtype=np.uint8).tobytes(), ".npy", "load", x)
    name, raw = mutate(rng, raw)
    return Case("npy", name, raw, ".npy", "either")


def fam_header(rng, shape, classes):
    """Headers that lie: sizes the file does not hold, impossible shapes, other types."""
    x, y = good(rng, shape, classes)
    n = len(x)
    payload = x.tobytes()
    dims = ", ".join(str(d) for d in shape[1:])
    lies = [
        ("10^11 elements", f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({10**11},), }}", "refuse"),
        ("10^11 samples", f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({10**11}, {dims}), }}", "refuse"),
        ("2^62 bytes", f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({2**59},), }}", "refuse"),
        ("more samples than held", f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n + 3}, {dims}), }}", "refuse"),
        ("fewer samples than held", f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({max(1, n - 1)}, {dims}), }}", "either"),
        ("negative samples", f"{{'descr': '<f4', 'fortran_order': False, 'shape': (-{n}, {dims}), }}", "refuse"),
        ("zero-width type, 10^15 items", f"{{'descr': '|V0', 'fortran_order': False, 'shape': ({10**15},), }}", "refuse"),
        ("objects", f"{{'descr': '|O', 'fortran_order': False, 'shape': ({n}, {dims}), }}", "refuse"),
        ("complex", f"{{'descr': '<c8', 'fortran_order': False, 'shape': ({n // 2 or 1}, {dims}), }}", "refuse"),
        ("unknown type", f"{{'descr': '<q9', 'fortran_order': False, 'shape': ({n}, {dims}), }}", "refuse"),
        ("not a dict", "[1, 2, 3]", "refuse"),
        ("no shape", "{'descr': '<f4', 'fortran_order': False, }", "refuse"),
        ("shape of floats", f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}.5, {dims}), }}", "refuse"),
        ("fortran order", f"{{'descr': '<f4', 'fortran_order': True, 'shape': ({n}, {dims}), }}", "either"),
        ("big-endian", f"{{'descr': '>f4', 'fortran_order': False, 'shape': ({n}, {dims}), }}", "either"),
    ]
    name, header, must = lies[int(rng.integers(len(lies)))]
    op = int(rng.integers(4))
    if op == 0:
        raw, name = npy_header(header, payload, header_len=int(rng.integers(60000, 65536))), name + ", header length past the end"
        must = "refuse"
    elif op == 1:
        raw, name = npy_header(header, payload, version=(int(rng.integers(3, 256)), 0)), name + ", unknown version"
        must = "refuse"
    else:
        raw = npy_header(header, payload)
    if rng.integers(2):
        return Case("header", name + " (in .npz)", zip_of({"x.npy": raw, "y.npy": npy(y)}), ".npz", must, labelled=True)
    return Case("header", name, raw, ".npy", must)


DTYPES = {  # samples of these types load (as numbers) or are refused (not numbers, or not real ones)
    "float16": "load", "float32": "load", "float64": "load", "int8": "load", "uint8": "load", "int16": "load",
    "int32": "load", "uint32": "load", "int64": "load", "uint64": "load",
    "bool": "refuse", "complex64": "refuse", "complex128": "refuse", "<U3": "refuse", "S3": "refuse",
    "object": "refuse", "datetime64[s]": "refuse", "timedelta64[ms]": "refuse", "a record": "refuse",
}


def fam_dtype(rng, shape, classes):
    x, y = good(rng, shape, classes)
    name = list(DTYPES)[int(rng.integers(len(DTYPES)))]
    dt = [("a", "<f4")] if name == "a record" else name
    if np.dtype(dt).kind in "iu":
        xs = (x * 100).astype(dt)
    elif np.dtype(dt).kind in "Mm":
        xs = (x * 1000).astype(np.int64).astype(dt)
    elif np.dtype(dt).kind == "c":
        xs = (x + 1j * x).astype(dt)
    elif np.dtype(dt).kind == "V":
        xs = np.zeros(x.shape, dtype=dt)
    else:
        xs = x.astype(dt)
    pickle = name == "object"
    if rng.integers(2):
        return Case("dtype", name, npz(x=xs, y=y), ".npz", DTYPES[name], labelled=True)   # savez pickles objects
    return Case("dtype", name, npy(xs, allow_pickle=pickle), ".npy", DTYPES[name])


def fam_values(rng, shape, classes):
    """Samples that are not finite, or too large to be sensor data."""
    x, y = good(rng, shape, classes)
    bad = [("nan", np.nan, "float32"), ("+inf", np.inf, "float32"), ("-inf", -np.inf, "float32"),
           ("3e38", 3e38, "float32"), ("-3.4e38", -3.4e38, "float32"), ("1e300", 1e300, "float64"),
           ("1e13", 1e13, "float64"), ("nan16", np.nan, "float16"), ("inf16", np.inf, "float16"),
           ("2^62", 2**62, "int64"), ("1e6", 1e6, "float32")]
    name, v, dt = bad[int(rng.integers(len(bad)))]
    xs = (x * 100).astype(dt) if dt == "int64" else x.astype(dt)
    k = int(rng.integers(1, 4))
    flat = xs.reshape(-1)
    for i in rng.integers(0, flat.size, k):
        flat[i] = v
    must = "load" if name == "1e6" else "refuse"
    if rng.integers(2):
        return Case("values", f"{k} x {name}", npz(x=xs, y=y), ".npz", must, labelled=True)
    return Case("values", f"{k} x {name}", npy(xs), ".npy", must)


def fam_shape(rng, shape, classes):
    """Samples of every shape; those that differ from the model's only by size-1 axes load."""
    inner = shape[1:]
    n = int(rng.integers(0, 5))
    squeezed = tuple(d for d in inner if d != 1)
    options = [(), (n,), (n,) + inner, (n,) + squeezed, (n, int(np.prod(inner))), (n, 1) + inner,
               (n,) + inner + (1,), (n,) + inner[:-1] + (2,), (n, 0) + inner[1:], (n,) + tuple(reversed(inner)),
               tuple(int(d) for d in rng.integers(0, 5, int(rng.integers(1, 5))))]
    s = options[int(rng.integers(len(options)))]
    x = rng.random(s).astype(np.float32)
    loads = len(s) >= 1 and s[0] > 0 and tuple(d for d in s[1:] if d != 1) == squeezed
    return Case("shape", f"x of shape {s}", npy(x), ".npy", "load" if loads else "refuse",
                x.reshape((s[0],) + inner) if loads else None)


def fam_labels(rng, shape, classes):
    """Labels of every wrong kind; class indices, integral floats, bools, one-hot rows and a column load."""
    x, y = good(rng, shape, classes)
    n = len(x)
    one_hot = np.eye(classes, dtype=np.float32)[y]
    kinds = [
        ("ints", y, "load", y), ("uint8", y.astype(np.uint8), "load", y), ("integral floats", y.astype(np.float32), "load", y),
        ("one-hot", one_hot, "load", y), ("column", y[:, None], "load", y),
        ("bool", (y % 2).astype(bool), "load", y % 2),
        ("negative", np.where(np.arange(n) == n - 1, -1, y), "refuse", None),
        ("= classes", np.where(np.arange(n) == 0, classes, y), "refuse", None),
        ("huge", np.where(np.arange(n) == 0, 2**40, y), "refuse", None),
        ("fractional", y + 0.5, "refuse", None),
        ("nan", np.where(np.arange(n) == 0, np.nan, y.astype(np.float64)), "refuse", None),
        ("inf", np.where(np.arange(n) == 0, np.inf, y.astype(np.float64)), "refuse", None),
        ("1e300", np.where(np.arange(n) == 0, 1e300, y.astype(np.float64)), "refuse", None),
        ("strings", np.array([f"c{v}" for v in y]), "refuse", None),
        ("digit strings", y.astype(str), "refuse", None),
        ("bytes", y.astype("S2"), "refuse", None),
        ("complex", y + 1j, "refuse", None),
        ("(n,3,3)", rng.integers(0, classes, (n, 3, 3)), "refuse", None),
        ("one-hot of the wrong width", np.eye(classes + 3, dtype=np.float32)[y], "refuse", None),
        ("one-hot with nan", np.where(np.arange(n)[:, None] == 0, np.nan, one_hot), "refuse", None),
        ("0-d", np.array(3), "refuse", None),
        ("one too few", y[:-1], "refuse", None),
        ("one too many", np.append(y, 1), "refuse", None),
        ("objects", y.astype(object), "refuse", None),
    ]
    name, labels, must, want = kinds[int(rng.integers(len(kinds)))]
    key = ["y", "labels", "y_test"][int(rng.integers(3))]
    return Case("labels", f"{key}: {name}", npz(**{"x": x, key: labels}), ".npz", must, x, want, True)


def fam_keys(rng, shape, classes):
    """What the arrays are called: x (or one alias) is the samples; anything else is not guessed."""
    x, y = good(rng, shape, classes)
    kinds = [
        ("x, y", {"x": x, "y": y}, "load"), ("x only", {"x": x}, "load"), ("x, y, meta", {"x": x, "y": y, "meta": np.arange(3)}, "load"),
        ("inputs, labels", {"inputs": x, "labels": y}, "load"), ("x_test, y_test", {"x_test": x, "y_test": y}, "load"),
        ("y only", {"y": y}, "refuse"), ("labels only", {"labels": y}, "refuse"), ("arr_0 only", {"arr_0": x}, "refuse"),
        ("samples only", {"samples": x}, "refuse"), ("arr_0, arr_1", {"arr_0": x, "arr_1": y}, "refuse"),
        ("x_train and x_test", {"x_train": x, "x_test": x, "y_train": y, "y_test": y}, "refuse"),
        ("x, y and labels", {"x": x, "y": y, "labels": y}, "load"),
        ("nothing", {}, "refuse"),
    ]
    name, arrays, must = kinds[int(rng.integers(len(kinds)))]
    labelled = any(k in arrays for k in ("y", "labels", "y_test"))
    if name == "nothing" and rng.integers(2):
        return Case("keys", "a zip with no arrays", zip_of({"readme.txt": b"hello"}), ".npz", "refuse")
    return Case("keys", name, npz(**arrays), ".npz", must, x if must == "load" else None,
                y if must == "load" and labelled else None, labelled)


def fam_garbage(rng, shape, classes):
    """Not .npz or .npy at all."""
    kinds = [("empty", b""), ("text", b"1,2,3\n4,5,6\n"), ("png", b"\x89PNG\r\n\x1a\n" + bytes(40)),
             ("zip magic, then noise", b"PK\x03\x04" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes()),
             ("npy magic, then noise", b"\x93NUMPY" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes()),
             ("noise", rng.integers(0, 256, int(rng.integers(1, 500)), dtype=np.uint8).tobytes()),
             ("a pickle", b"\x80\x04\x95" + bytes(20))]
    name, raw = kinds[int(rng.integers(len(kinds)))]
    return Case("garbage", name, raw, [".npz", ".npy"][int(rng.integers(2))], "refuse")


FAMILIES = {f.__name__[4:]: f for f in (fam_zip, fam_npy, fam_header, fam_dtype, fam_values, fam_shape,
                                        fam_labels, fam_keys, fam_garbage)}


def cases(family: str, count: int, seed: int = 0, shape=SHAPE, classes=CLASSES):
    for i in range(count):
        yield FAMILIES[family](np.random.default_rng([seed, i, len(family)]), shape, classes)


# --- what happens to a case ---------------------------------------------------------------

def insane(ds: data.Dataset, case: Case, shape, classes) -> str | None:
    """Why a loaded data set would mislead, or None."""
    x = ds.x
    if x.dtype not in (np.float32, np.int8) or x.shape[1:] != shape[1:] or len(x) == 0:
        return f"samples of {x.dtype} {x.shape}"
    if x.dtype == np.float32 and not np.isfinite(x).all():
        return "non-finite samples"
    if x.dtype == np.float32 and np.abs(x).max() > 1e12:
        return "huge samples"
    if case.x is not None and not np.array_equal(x, case.x.astype(np.float32).reshape(x.shape)):
        return "samples changed"
    if ds.y is None:
        return "labels dropped" if case.labelled else None
    y = np.asarray(ds.y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        return f"labels of {y.dtype} {y.shape}"
    if y.min() < 0 or y.max() >= classes:
        return "labels outside the classes"
    if case.y is not None and not np.array_equal(y, case.y):
        return "labels changed"
    return None


def run_case(case: Case, path: Path, shape=SHAPE, classes=CLASSES) -> str:
    """'loaded', 'refused', or what went wrong: 'crash:<type>' or 'silent:<why>'."""
    path.write_bytes(case.content)
    try:
        ds = data.conform(data.load_data(path, "calibration data"), shape, "calibration data", classes)
    except DataError as e:
        msg = str(e)
        if "\n" in msg or not msg.rstrip().endswith("."):
            return "crash:not one sentence"
        return "refused"
    except Exception as e:  # noqa: BLE001 (what the fuzzer is looking for)
        return f"crash:{type(e).__name__}"
    why = insane(ds, case, shape, classes)
    if why:
        return f"silent:{why}"
    return "loaded" if case.must != "refuse" else "silent:should refuse"


def send_case(path: Path) -> str:
    """`monitor --send` without a model: int8 samples become byte strings, anything else a sentence."""
    try:
        out = samples_to_send(path, None)
    except TinygenError:
        return "refused"
    except Exception as e:  # noqa: BLE001
        return f"crash:{type(e).__name__}"
    x = np.load(path, allow_pickle=False)
    x = x["x"] if isinstance(x, np.lib.npyio.NpzFile) else x
    if x.dtype != np.int8 or len(out) != len(x) or any(s != row.tobytes() for s, row in zip(out, x)):
        return "silent:sent other bytes"
    return "loaded"


def tally(count_per_family: int, tmp: Path, seed: int = 0) -> dict[str, Counter]:
    out = {}
    for fam in FAMILIES:
        c = Counter()
        for i, case in enumerate(cases(fam, count_per_family, seed)):
            path = tmp / f"{fam}{i}{case.suffix}"   # a new file each time: rewriting one is slow on some file systems
            c["load " + run_case(case, path)] += 1
            c["send " + send_case(path)] += 1
            path.unlink()
        out[fam] = c
    return out


# --- the tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_case_loads_sane_or_is_refused(family, tmp_path):
    bad = []
    for i, case in enumerate(cases(family, max(1, CASES // len(FAMILIES)))):
        path = tmp_path / f"case{i}{case.suffix}"
        got = run_case(case, path)
        if got not in ("loaded", "refused") or (case.must == "load" and got != "loaded"):
            bad.append(f"#{i} {case.name} ({case.must}): {got}")
        sent = send_case(path)
        if sent not in ("loaded", "refused"):
            bad.append(f"#{i} {case.name} through --send: {sent}")
        path.unlink()
    assert not bad, f"{len(bad)} bad cases in {family}, first: " + "; ".join(bad[:5])


def test_messages_name_the_file_the_key_and_the_problem(tmp_path):
    x = np.random.default_rng(0).random((40, 8, 8, 1)).astype(np.float32)
    x[17, 1, 2, 0] = x[30, 0, 0, 0] = x[31, 0, 0, 0] = np.nan
    np.savez(tmp_path / "calib.npz", x=x)
    with pytest.raises(DataError) as e:
        data.load_data(tmp_path / "calib.npz", "calibration data")
    assert str(e.value) == f"{tmp_path / 'calib.npz'}: x holds 3 NaN values (first at sample 17); calibration data must be finite."
    np.savez(tmp_path / "val.npz", x=x[:4] * 0, y=np.array([1, 2, 12, 3]))
    with pytest.raises(DataError) as e:
        data.conform(data.load_data(tmp_path / "val.npz", "validation data"), (1, 8, 8, 1), "validation data", 12)
    assert "val.npz: y" in str(e.value) and "12 at sample 2" in str(e.value) and "0 to 11" in str(e.value)


def test_large_arrays_are_checked_fast():
    """The checks are numpy passes, not Python loops (which would take a minute here): 16 million
    values, refused and accepted, in well under a second."""
    import time

    x = np.ones((1024, 128, 128, 1), np.float32)
    x[-1, -1, -1, 0] = np.inf
    ds = data.Dataset(x, np.zeros(1024, np.int64), "big")
    t = time.perf_counter()
    with pytest.raises(DataError, match="1 infinite value \\(first at sample 1023\\)"):
        data.conform(ds, (1, 128, 128, 1), "calibration data", 10)
    x[-1, -1, -1, 0] = 1.0
    data.conform(ds, (1, 128, 128, 1), "calibration data", 10)
    assert time.perf_counter() - t < 1.0


def _cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygen.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _one_sentence(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1, r.stderr[-2000:]


# The first refused case of these families, shaped for the KWS model, through `tinygen fit`.
CLI_SAMPLE = ["header", "labels", "keys"]


@pytest.mark.parametrize("family", CLI_SAMPLE)
def test_cli_fit_refuses_in_one_sentence(family, tmp_path, shared_models):
    case = next(c for c in cases(family, 200, seed=1, shape=KWS_SHAPE, classes=KWS_CLASSES)
                if c.must == "refuse" and not c.name.startswith("truncate to 0"))
    path = tmp_path / f"data{case.suffix}"
    path.write_bytes(case.content)
    _one_sentence(_cli("fit", "--board", "sparkfun-edge", "--model", shared_models / "kws_ref_model.tflite",
                       "--data", path, cwd=tmp_path))


@pytest.mark.parametrize("value", [np.nan, 3e38])
def test_cli_build_refuses_before_the_converter(value, tmp_path):
    """Once TensorFlow's converter died of these (SIGSEGV, no output)."""
    x = np.random.default_rng(0).random((20, 8, 8, 1)).astype(np.float32)
    x[5, 3, 3, 0] = value
    np.savez(tmp_path / "calib.npz", x=x)
    r = _cli("build", "--board", "sparkfun-edge", "--data", tmp_path / "calib.npz", "--out", tmp_path / "out", cwd=tmp_path)
    _one_sentence(r)
    assert "calib.npz: x" in r.stderr and "sample 5" in r.stderr
