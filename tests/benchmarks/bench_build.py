"""Wall time of `tinygen build` next to a bare TFLiteConverter int8 conversion of the same
model, each in a fresh process (both pay for importing TensorFlow), side by side in one run.

    python tests/benchmarks/bench_build.py [../shared/models] [--repeat 2]

Prints a table and the ratio build / bare; a figure, not an assertion."""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = r'''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, tf_keras
path = sys.argv[1]
if path.endswith(".h5"):
    model = tf_keras.models.load_model(path, compile=False)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    shape = model.inputs[0].shape[1:]
else:
    conv = tf.lite.TFLiteConverter.from_saved_model(path)
    sig = tf.saved_model.load(path).signatures["serving_default"]
    shape = list(sig.structured_input_signature[1].values())[0].shape[1:]
data = np.random.default_rng(0).random((100,) + tuple(shape), dtype=np.float32)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = lambda: ([d[None]] for d in data)
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8; conv.inference_output_type = tf.int8
open(os.devnull, "wb").write(conv.convert())
'''

MODELS = ["vww_96.h5", "pretrainedResnet.h5", "ad01.h5", "kws_ref_model"]


def timed(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="?", default=str(Path(__file__).resolve().parents[3] / "shared" / "models"))
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"{'model':22s} {'bare convert s':>15s} {'tinygen build s':>16s} {'ratio':>6s}")
    for name in MODELS:
        path = str(Path(args.models) / name)
        bare, build = [], []
        for _ in range(args.repeat):
            bare.append(timed([sys.executable, "-c", BARE, path]))
            with tempfile.TemporaryDirectory() as out:
                build.append(timed([sys.executable, "-m", "tinygen.cli", "build", "--board", "sparkfun-edge",
                                    "--model", path, "--out", out, "--json"]))
        b, t = statistics.median(bare), statistics.median(build)
        print(f"{name:22s} {b:15.1f} {t:16.1f} {t / b:6.2f}")


if __name__ == "__main__":
    main()
