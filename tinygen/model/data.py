"""Calibration and validation data: .npz or .npy, labels optional, checked against the model.

Every file is untrusted: its structure is read before its data (an .npy header can claim any
size), and its values are checked before TensorFlow sees them (the converter dies of a signal,
not an exception, on NaN or near-float32-max samples)."""

from __future__ import annotations

import lzma
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError

import numpy as np
from numpy.lib import format as npy_format

from ..errors import DataError

_X_KEYS = ("x", "inputs", "input", "data", "x_test", "x_val", "x_train")
_Y_KEYS = ("y", "labels", "label", "targets", "y_test", "y_val", "y_train")

# Far more than calibration (hundreds of samples) or validation needs; a header that claims more
# is refused before anything is allocated.
MAX_BYTES = 4 * 2**30
# Beyond any sensor's full scale (a 32-bit ADC reads under 4.3e9) and far below float32's 3.4e38:
# TensorFlow's converter died (SIGSEGV) on the bundled model with one calibration value of 1e38.
MAX_MAGNITUDE = 1e12
_MAX_HEADER = 10000   # numpy's own limit on an .npy header (numpy.lib.format)

# What zipfile, zlib, lzma and numpy's header parser raise on damaged bytes (tokenize and ast
# parse the header; struct reads its length).
_DAMAGE = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, RuntimeError,
           struct.error, OverflowError, TokenError, SyntaxError, TypeError, MemoryError)


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray | None
    source: str           # a path, or a description of generated data
    generated: bool = False
    x_name: str | None = "x"   # the arrays' names in the file, for messages (an .npy has none)
    y_name: str | None = "y"

    def __len__(self) -> int:
        return len(self.x)

    def where(self, name: str | None) -> str:
        return f"{self.source}: {name}" if name else self.source


def load_data(path: Path, what: str = "data") -> Dataset:
    """Read samples (and labels, if present) from an .npz or .npy file, and check what can be
    checked without the model: sizes, types, finite values, labels that are class numbers."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"There is no data file at {path}.")
    if path.is_dir():
        raise DataError(f"{path} is a folder; --data and --val take an .npz or .npy file.")
    try:
        with path.open("rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}).") from None
    if head == npy_format.MAGIC_PREFIX:
        ds = Dataset(_read_npy(path), None, str(path), x_name=None)
    elif head[:2] == b"PK":
        ds = _read_npz(path)
    else:
        raise DataError(f"{path} is not an .npz or .npy file (it does not start like one); "
                        "save the samples with numpy.savez(path, x=samples, y=labels).")
    _check_samples(ds, what)
    if ds.y is not None:
        _check_labels(ds, None)
    return ds


def _read_header(f, where: str, stored: int) -> None:
    """Refuse a header that is damaged, holds Python objects, or promises more data than the file
    holds or than tinygen loads, before numpy allocates what it promises."""
    try:
        version = npy_format.read_magic(f)
        if version in ((2, 0), (3, 0)):   # a 4-byte header length: numpy would read that much first
            length = struct.unpack("<I", f.read(4))[0]
            if length > _MAX_HEADER:
                raise DataError(f"{where} is damaged: its .npy header claims to be {length:,} bytes long.")
            f.seek(f.tell() - 4)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(f, _MAX_HEADER)
        elif version in ((2, 0), (3, 0)):   # 3.0 differs from 2.0 only in utf-8 field names
            shape, _, dtype = npy_format.read_array_header_2_0(f, _MAX_HEADER)
        else:
            raise DataError(f"{where} is an .npy of format version {version[0]}.{version[1]}, which numpy "
                            "does not write; save it again with numpy.save.")
    except _DAMAGE as e:
        raise DataError(f"{where} is damaged: its .npy header cannot be read ({_first_line(e)}).") from None
    if any(d < 0 for d in shape):
        raise DataError(f"{where} is damaged: its .npy header gives the shape {shape}.")
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects (a pickled array), which tinygen does not load; "
                        "save numbers.")
    count = math.prod(shape)
    need = count * dtype.itemsize
    if max(count, need) > MAX_BYTES:
        raise DataError(f"{where} claims {count:,} values of {dtype} in its header, more than the "
                        f"{MAX_BYTES // 2**30} GiB tinygen loads; pass fewer samples.")
    if need > stored - f.tell():
        raise DataError(f"{where} is truncated: its header promises {need:,} bytes of data, but only "
                        f"{max(0, stored - f.tell()):,} follow.")


def _read_npy(path: Path) -> np.ndarray:
    try:
        with path.open("rb") as f:
            _read_header(f, str(path), path.stat().st_size)
            f.seek(0)
            return npy_format.read_array(f, allow_pickle=False)
    except DataError:
        raise
    except _DAMAGE as e:
        raise DataError(f"{path} is damaged ({_first_line(e)}).") from None


def _read_npz(path: Path) -> Dataset:
    try:
        with zipfile.ZipFile(path) as z:
            members = {}
            for info in z.infolist():
                with z.open(info):   # checks each entry's own header against the directory: a name
                    pass             # damaged in one of them would make labels vanish unnoticed
                if info.filename.endswith(".npy"):
                    members[info.filename[:-4]] = info
            with path.open("rb") as raw:
                hidden = _hidden_entry(raw, z.infolist())
            if hidden:
                raise DataError(f"{path} is a damaged .npz: its directory does not list every array it holds.")
            keys = list(members)
            xk, yk = _pick(keys, _X_KEYS, path, "samples"), _pick(keys, _Y_KEYS, path, "labels")
            if xk is None:
                raise DataError(_no_samples(path, keys, yk))
            arrays = []
            for k in (xk, yk):
                if k is None:
                    arrays.append(None)
                    continue
                where = f"{path}: {k}"
                with z.open(members[k]) as f:
                    _read_header(f, where, members[k].file_size)
                with z.open(members[k]) as f:
                    arrays.append(npy_format.read_array(f, allow_pickle=False))
    except DataError:
        raise
    except _DAMAGE as e:
        raise DataError(f"{path} is a damaged .npz ({_first_line(e)}).") from None
    return Dataset(arrays[0], arrays[1], str(path), x_name=xk, y_name=yk)


def _hidden_entry(f, infos: list[zipfile.ZipInfo]) -> bool:
    """Whether an entry follows a listed one without being listed itself. A zip's directory has no
    checksum: one damaged length in it (a comment length that swallows the next record) hides a
    member, and labels would vanish unnoticed. Local header layout: APPNOTE.TXT 4.3.7."""
    starts = {info.header_offset for info in infos}
    for info in infos:
        if info.flag_bits & 0x08:   # a data descriptor follows the data: its end is not known here
            continue
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        end = info.header_offset + 30 + name_len + extra_len + info.compress_size
        f.seek(end)
        if f.read(4) == b"PK\x03\x04" and end not in starts:
            return True
    return False


def _pick(keys: list[str], names: tuple[str, ...], path: Path, role: str) -> str | None:
    """The documented name if it is there, else the one alias that is; two aliases are a question
    tinygen does not answer for the user."""
    if names[0] in keys:
        return names[0]
    found = [k for k in names[1:] if k in keys]
    if len(found) > 1:
        raise DataError(f"{path} holds {role} under {_names(found)}; keep one, named '{names[0]}'.")
    return found[0] if found else None


def _no_samples(path: Path, keys: list[str], yk: str | None) -> str:
    # No guess at the samples: an unnamed array may be labels, a mean or anything else, and a
    # wrong guess surfaces later as a shape error or, worse, as a plausible accuracy.
    how = "np.savez(path, x=samples, y=labels)"
    if not keys:
        return f"{path} holds no arrays; save the samples as 'x' ({how})."
    if yk is not None and all(k in _Y_KEYS for k in keys):
        return f"{path} holds only labels ({_names(keys)}) and no samples; save the samples as 'x' ({how})."
    return f"{path} holds {_names(keys)} but no 'x'; tinygen does not guess which array is the samples: name them 'x' ({how})."


def _names(keys: list[str]) -> str:
    shown = [repr(k)[:40] for k in keys[:5]]
    return ", ".join(shown) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _first_line(e: BaseException) -> str:
    """The gist of a library's message: its first line, printable, short (it may quote damaged bytes)."""
    lines = str(e).strip().splitlines()
    text = "".join(c if c.isprintable() and c.isascii() else "?" for c in (lines[0] if lines else ""))
    text = text if len(text) <= 80 else text[:77] + "..."
    return text.rstrip(".") or type(e).__name__


def _sample_of(mask: np.ndarray) -> int:
    """The first sample (row) where mask is true."""
    return int(mask.reshape(len(mask), -1).any(axis=1).argmax())


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _check_samples(data: Dataset, what: str) -> None:
    """Samples must be an array of real, finite numbers within ±MAX_MAGNITUDE: NaN and inf reach
    TensorFlow's converter (which crashes) or become garbage int8, silently."""
    x = data.x
    where = data.where(data.x_name)
    if x.ndim == 0:
        raise DataError(f"{where} is a single value, not an array of samples (one per row).")
    if len(x) == 0:
        raise DataError(f"{where} holds no samples.")
    kind = x.dtype.kind
    if kind == "c":
        raise DataError(f"{where} holds complex numbers; {what} must be real.")
    if kind in "US":
        raise DataError(f"{where} holds text, not numbers.")
    if kind not in "iuf":
        raise DataError(f"{where} is of type {x.dtype}, not numbers.")
    if x.size == 0:
        return
    lo, hi = x.min(), x.max()   # two passes that allocate nothing; NaN propagates through both
    if kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        nan, inf = np.isnan(x), np.isinf(x)
        counts = ((int(nan.sum()), "NaN value"), (int(inf.sum()), "infinite value"))
        text = " and ".join(_plural(n, w) for n, w in counts if n)
        raise DataError(f"{where} holds {text} (first at sample {_sample_of(nan | inf)}); {what} must be finite.")
    if max(abs(float(lo)), abs(float(hi))) > MAX_MAGNITUDE:
        big = (x > MAX_MAGNITUDE) | (x < -MAX_MAGNITUDE)
        v = float(hi) if abs(float(hi)) >= abs(float(lo)) else float(lo)
        raise DataError(f"{where} holds values as large as {v:.3g} (first at sample {_sample_of(big)}); "
                        f"tinygen takes {what} within ±{MAX_MAGNITUDE:.0e}; scale the data.")


def _check_labels(data: Dataset, classes: int | None) -> np.ndarray:
    """Labels as class numbers (int64, one per sample), from class numbers, integral floats, bools,
    a column or one-hot rows; anything else is a DataError, not a label dropped or misread."""
    y = np.asarray(data.y)
    n = len(data.x)
    where = data.where(data.y_name)
    valid = f"0 to {classes - 1}" if classes else "counting from 0"
    if y.ndim == 0:
        raise DataError(f"{where} is a single value, not one label per sample.")
    if len(y) != n:
        raise DataError(f"{where} holds {_plural(len(y), 'label')} for {_plural(n, 'sample')}; give one label per sample.")
    kind = y.dtype.kind
    if kind in "US":
        shown = ", ".join(repr(str(v))[:20] for v in y.reshape(-1)[:3])
        raise DataError(f"{where} holds text labels ({shown}, ...); labels must be class numbers, {valid}.")
    if kind == "c":
        raise DataError(f"{where} holds complex numbers; labels must be class numbers, {valid}.")
    if kind not in "biuf":
        raise DataError(f"{where} is of type {y.dtype}; labels must be class numbers, {valid}.")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:   # one-hot, or scores per class: the class is the largest
        if classes is not None and y.shape[1] != classes:
            raise DataError(f"{where} holds rows of {y.shape[1]} values, but the model has {classes} outputs; "
                            f"give one class number per sample, or one-hot rows of {classes}.")
        if kind == "f" and not np.isfinite(y).all():
            raise DataError(f"{where} holds NaN or infinite values (first at sample {_sample_of(~np.isfinite(y))}); "
                            "one-hot labels must be finite.")
        flat = y.max(axis=1) == y.min(axis=1)
        if flat.any():
            raise DataError(f"{where} holds a row with no largest value (sample {int(flat.argmax())}), "
                            "so it names no class.")
        return y.argmax(axis=1).astype(np.int64)
    if y.ndim != 1:
        raise DataError(f"{where} holds labels of shape {y.shape[1:]} per sample; give one class number "
                        "per sample, or one-hot rows.")
    if kind == "b":
        y = y.astype(np.int64)
    if kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise DataError(f"{where} holds {_plural(int(bad.sum()), 'NaN or infinite label')} "
                            f"(first at sample {int(bad.argmax())}); labels must be class numbers, {valid}.")
        frac = y != np.floor(y)
        if frac.any():
            i = int(frac.argmax())
            raise DataError(f"{where} holds fractional labels ({y[i]:g} at sample {i}); labels must be "
                            f"class numbers, {valid}.")
    if y.min() < 0:
        i = int((y < 0).argmax())
        raise DataError(f"{where} holds negative labels ({y[i]:g} at sample {i}); labels must be class numbers, {valid}.")
    limit = classes if classes else 2**31
    if y.max() >= limit:
        i = int((y >= limit).argmax())
        outside = f"outside the model's {classes} classes" if classes else "too large to be a class number"
        raise DataError(f"{where} holds a label {outside} ({y[i]:g} at sample {i}); labels must be class numbers, {valid}.")
    return y.astype(np.int64)


def output_classes(output_shape) -> int | None:
    """The model's number of classes as tinygen scores it (top-1 over the flattened output), or
    None if the output has a dimension that is not known."""
    dims = output_shape[1:]
    return math.prod(int(d) for d in dims) if all(d is not None and int(d) > 0 for d in dims) else None


def conform(data: Dataset, input_shape: tuple[int, ...], what: str = "data", classes: int | None = None) -> Dataset:
    """Samples checked and reshaped to the model's input (only size-1 axes may differ), labels
    checked against the model's `classes` (its output size; None: not checked); else a DataError."""
    want = tuple(int(d) for d in input_shape[1:])
    x = np.asarray(data.x)
    checked = Dataset(x, data.y, data.source, data.generated, data.x_name, data.y_name)
    _check_samples(checked, what)   # again: data sets made in memory come here without load_data
    got = x.shape[1:]
    if got != want:
        squeeze = lambda s: tuple(d for d in s if d != 1)  # noqa: E731
        if squeeze(got) == squeeze(want):
            x = x.reshape((len(x),) + want)
        else:
            raise DataError(
                f"{checked.where(data.x_name)} has samples of shape {got}, but the model takes {want}."
            )
    y = _check_labels(checked, classes) if data.y is not None else None
    return Dataset(x.astype(np.float32) if x.dtype != np.int8 else x, y, data.source, data.generated,
                   data.x_name, data.y_name)


def generated(input_shape: tuple[int, ...], count: int = 100, seed: int = 0) -> Dataset:
    """Stand-in calibration data: uniform in [0, 1). Accuracy is unknown with it."""
    rng = np.random.default_rng(seed)
    shape = (count,) + tuple(int(d) for d in input_shape[1:])
    return Dataset(rng.random(shape, dtype=np.float32), None, "generated uniform [0, 1) samples", True)


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    q = np.round(x / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def quantize_samples(graph, x: np.ndarray) -> np.ndarray:
    """Float samples to the model's int8 input, as TFLite quantizes them."""
    if x.dtype == np.int8:
        return x
    tin = graph.tensors[graph.inputs[0]]
    return quantize_input(x, tin.first_scale, tin.first_zero_point)
