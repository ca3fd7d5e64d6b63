"""Calibration and validation data: .npz or .npy, labels optional, checked against the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

_X_KEYS = ("x", "inputs", "input", "data", "x_test", "x_val", "x_train")
_Y_KEYS = ("y", "labels", "label", "targets", "y_test", "y_val", "y_train")


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray | None
    source: str           # a path, or a description of generated data
    generated: bool = False

    def __len__(self) -> int:
        return len(self.x)


def load_data(path: Path) -> Dataset:
    """Read samples (and labels, if present) from an .npz or .npy file."""
    if not path.exists():
        raise DataError(f"There is no data file at {path}.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz or .npy file ({e}).") from None
    if isinstance(loaded, np.ndarray):
        return Dataset(loaded, None, str(path))
    with loaded:
        keys = list(loaded.keys())
        xk = next((k for k in _X_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if xk is None:
            raise DataError(
                f"{path} holds {', '.join(keys)}; name the samples 'x' (and the labels 'y')."
            )
        yk = next((k for k in _Y_KEYS if k in keys), None)
        try:
            x = loaded[xk]
            y = loaded[yk] if yk else None
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path} is damaged: {e}.") from None
    if y is not None and len(y) != len(x):
        raise DataError(f"{path} has {len(x)} samples but {len(y)} labels.")
    return Dataset(x, y, str(path))


def conform(data: Dataset, input_shape: tuple[int, ...], what: str = "data") -> Dataset:
    """Reshape samples to the model's input shape when only size-1 axes differ; else a DataError."""
    want = tuple(int(d) for d in input_shape[1:])
    x = np.asarray(data.x)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"The {what} in {data.source} holds no samples.")
    got = x.shape[1:]
    if got != want:
        squeeze = lambda s: tuple(d for d in s if d != 1)  # noqa: E731
        if squeeze(got) == squeeze(want):
            x = x.reshape((len(x),) + want)
        else:
            raise DataError(
                f"The {what} in {data.source} has samples of shape {got}, "
                f"but the model takes {want}."
            )
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"The {what} in {data.source} is of type {x.dtype}, not numbers.")
    y = data.y
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:  # one-hot
            y = y.argmax(axis=1)
        y = y.reshape(len(y)).astype(np.int64) if np.issubdtype(y.dtype, np.number) else None
    return Dataset(x.astype(np.float32) if x.dtype != np.int8 else x, y, data.source, data.generated)


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
