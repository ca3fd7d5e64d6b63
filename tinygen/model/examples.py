"""The bundled default example: a small CNN for scikit-learn's 8x8 digits.

The model file is trained by examples/digits/train.py; the data ships with scikit-learn,
so nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Dataset
from ..resources import resource_dir

SPLIT_SEED = 0
TEST_FRACTION = 0.25


def digits_model_path() -> Path:
    return resource_dir("examples") / "digits" / "model.h5"


def digits_splits() -> tuple[Dataset, Dataset]:
    """(train, test): pixels scaled to [0, 1], shaped (N, 8, 8, 1), the same split train.py uses."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    return (Dataset(xtr, ytr, "scikit-learn digits (train split)"),
            Dataset(xte, yte, "scikit-learn digits (test split)"))
