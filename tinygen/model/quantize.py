"""Full-integer int8 post-training quantization with TensorFlow Lite's converter.

TF 2.21's converter quantizes FULLY_CONNECTED weights per output channel. TFLM then keeps a
multiplier and a shift per channel in the arena (and CMSIS-NN takes a slower path): for an
all-dense auto-encoder that is most of the arena. The converter's switch for per-tensor dense
layers is offered (`dense`), and `choose_dense` keeps per-tensor where it costs at most 0.1
point of int8 accuracy (or agreement with the float model) on the validation data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .graph import Graph, parse
from .data import Dataset
from ..errors import ModelError, QuantizeError
from .source import ModelSource, load_keras


DENSE = ("auto", "per-channel", "per-tensor")
DENSE_MAX_DROP = 0.001      # 0.1 point of top-1 accuracy (or agreement), as a fraction


@dataclass(frozen=True)
class DenseChoice:
    """How FULLY_CONNECTED weights were quantized, and the int8 score of each way."""
    chosen: str                     # "per-channel" or "per-tensor"
    asked: str                      # "auto", "per-channel" or "per-tensor"
    per_channel: float | None       # int8 top-1 accuracy (or agreement) with per-channel dense weights
    per_tensor: float | None
    measured_by: str                # "labels", "agreement with the float model"
    samples: int

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "asked": self.asked, "per_channel_int8": self.per_channel,
                "per_tensor_int8": self.per_tensor, "measured_by": self.measured_by, "samples": self.samples}


def per_channel_dense(g: Graph) -> bool:
    """Whether any FULLY_CONNECTED layer has per-channel weights (what per-tensor would change)."""
    return any(op.op == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.inputs[1] >= 0
               and g.tensors[op.inputs[1]].scale is not None and len(g.tensors[op.inputs[1]].scale) > 1
               for op in g.operators)


def choose_dense(per_channel: float | None, per_tensor: float | None) -> str:
    """Per-tensor where its score is within DENSE_MAX_DROP of per-channel's (or better)."""
    if per_channel is None or per_tensor is None:
        return "per-channel"     # nothing measured: keep the converter's default
    return "per-tensor" if per_tensor >= per_channel - DENSE_MAX_DROP - 1e-12 else "per-channel"


def quantize(src: ModelSource, calibration: Dataset, keras_model=None, max_samples: int = 300,
             dense: str = "per-channel") -> bytes:
    """A .tflite with int8 input, int8 output and int8 builtins only; FULLY_CONNECTED weights
    quantized per channel (the converter's default) or, with dense "per-tensor", per tensor.

    An already-int8 .tflite passes through unchanged. The converter is asked for
    TFLITE_BUILTINS_INT8 only, so an op it cannot quantize fails here, named.
    """
    if dense not in ("per-channel", "per-tensor"):
        raise QuantizeError(f"dense layers are quantized per-channel or per-tensor, not '{dense}'.")
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
    # the converter's own switch (TF >= 2.13); private, so a converter without it is told apart
    if dense == "per-tensor":
        if not hasattr(converter, "_experimental_disable_per_channel_quantization_for_dense_layers"):
            raise QuantizeError("This TensorFlow's converter cannot quantize dense layers per tensor; "
                                "use per-channel dense layers.")
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
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
