"""Model input: Keras .h5/.keras, a SavedModel directory, or a .tflite flatbuffer."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class ModelSource:
    path: Path
    kind: str              # "keras", "saved_model" or "tflite"

    @property
    def name(self) -> str:
        return self.path.name


def detect(path: Path) -> ModelSource:
    """Say what kind of model `path` is, from its contents, not only its name."""
    if not path.exists():
        raise ModelError(f"There is no model at {path}.")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return ModelSource(path, "saved_model")
        raise ModelError(f"{path} is a folder but not a SavedModel (no saved_model.pb in it).")
    with path.open("rb") as f:
        head = f.read(8)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return ModelSource(path, "tflite")
    if head == _HDF5_MAGIC:
        return ModelSource(path, "keras")
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        return ModelSource(path, "keras")
    if path.suffix in (".h5", ".hdf5", ".keras", ".tflite"):
        raise ModelError(f"{path} is corrupt or truncated: it does not start like a {path.suffix} file.")
    raise ModelError(f"{path} is not a model tinygen reads (Keras .h5/.keras, a SavedModel folder, or .tflite).")


def load_keras(src: ModelSource):
    """The Keras model (tf-keras). A damaged file is a ModelError, not a traceback."""
    from .tf import keras, tf

    tf()
    try:
        return keras().models.load_model(str(src.path), compile=False)
    except Exception as e:  # h5py, zipfile and Keras raise many kinds for damaged files
        raise ModelError(
            f"{src.name} cannot be loaded as a Keras model; it is corrupt, truncated, or uses "
            f"custom layers tinygen does not know ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})."
        ) from None


def input_shape(src: ModelSource, keras_model=None) -> tuple[int, ...]:
    """The model's input shape with the batch axis first."""
    if src.kind == "keras":
        m = keras_model if keras_model is not None else load_keras(src)
        shape = m.inputs[0].shape
        return tuple(1 if d is None else int(d) for d in shape)
    if src.kind == "saved_model":
        fn = _saved_model_signature(src)
        spec = list(fn.structured_input_signature[1].values())[0]
        return tuple(1 if d is None else int(d) for d in spec.shape)
    raise ValueError("input_shape of a .tflite comes from graph.parse")


def output_shape(src: ModelSource, keras_model=None) -> tuple[int | None, ...]:
    """The model's (first) output shape with the batch axis first; None where it is not fixed."""
    if src.kind == "keras":
        m = keras_model if keras_model is not None else load_keras(src)
        return tuple(None if d is None else int(d) for d in m.outputs[0].shape)
    if src.kind == "saved_model":
        spec = list(_saved_model_signature(src).structured_outputs.values())[0]
        return tuple(None if d is None else int(d) for d in spec.shape)
    raise ValueError("output_shape of a .tflite comes from graph.parse")


def _saved_model_signature(src: ModelSource):
    from .tf import tf

    try:
        loaded = tf().saved_model.load(str(src.path))
        return loaded.signatures["serving_default"]
    except Exception as e:
        raise ModelError(f"{src.name} cannot be loaded as a SavedModel ({type(e).__name__}).") from None


def float_predict(src: ModelSource, x, keras_model=None, batch: int = 256):
    """Float outputs of the source model, for float accuracy and distillation."""
    import numpy as np

    if src.kind == "keras":
        m = keras_model if keras_model is not None else load_keras(src)
        return m.predict(x, batch_size=batch, verbose=0)
    fn = _saved_model_signature(src)
    key = list(fn.structured_input_signature[1].keys())[0]
    outs = []
    for i in range(0, len(x), batch):
        r = fn(**{key: x[i:i + batch]})
        outs.append(list(r.values())[0].numpy())
    return np.concatenate(outs)
