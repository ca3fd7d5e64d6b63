"""Full-integer int8 post-training quantization with TensorFlow Lite's converter."""

from __future__ import annotations

import re

import numpy as np

from .graph import parse
from .data import Dataset
from ..errors import ModelError, QuantizeError
from .source import ModelSource, load_keras


def quantize(src: ModelSource, calibration: Dataset, keras_model=None, max_samples: int = 300) -> bytes:
    """A .tflite with int8 input, int8 output and int8 builtins only.

    An already-int8 .tflite passes through unchanged. The converter is asked for
    TFLITE_BUILTINS_INT8 only, so an op it cannot quantize fails here, named.
    """
    if src.kind == "tflite":
        model_bytes = src.path.read_bytes()
        g = parse(model_bytes, src.name)
        ok, op = g.is_full_int8()
        if not ok:
            raise QuantizeError(
                f"{src.name} is a float .tflite (its {op} is not int8); give tinygen the Keras model "
                "or SavedModel it came from, so it can be quantized with calibration data."
            )
        return model_bytes

    from .tf import tf

    tf_ = tf()
    if src.kind == "keras":
        model = keras_model if keras_model is not None else load_keras(src)
        converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    else:
        try:
            converter = tf_.lite.TFLiteConverter.from_saved_model(str(src.path))
        except Exception as e:
            raise ModelError(f"{src.name} cannot be loaded as a SavedModel ({type(e).__name__}).") from None

    samples = np.asarray(calibration.x[:max_samples], dtype=np.float32)

    def representative():
        for s in samples:
            yield [s[np.newaxis, ...]]

    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf_.int8
    converter.inference_output_type = tf_.int8
    try:
        model_bytes = converter.convert()
    except Exception as e:
        raise QuantizeError(_conversion_failure(str(e), src.name)) from None
    g = parse(model_bytes, src.name)
    ok, op = g.is_full_int8()
    if not ok:
        raise QuantizeError(f"{src.name} cannot be made fully int8: its {op} op stays float.")
    return model_bytes


def _conversion_failure(message: str, name: str) -> str:
    ops = re.findall(r"'(tf\.[A-Za-z0-9_]+|tfl\.[A-Za-z0-9_]+)'", message)
    if not ops:
        ops = re.findall(r"\b(tf\.[A-Za-z0-9_]+|tfl\.[A-Za-z0-9_]+)\b", message)
    if ops:
        names = ", ".join(dict.fromkeys(ops))
        return f"{name} cannot be made fully int8: the converter has no int8 kernel for {names}."
    first = next((l for l in message.splitlines() if "error" in l.lower()), message.splitlines()[0] if message else "")
    return f"{name} cannot be converted to int8 TFLite: {first.strip()[:200]}"
