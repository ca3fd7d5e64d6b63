"""Train tinygen's bundled default example: a small CNN on scikit-learn's 8x8 digits.

    python examples/digits/train.py            # writes examples/digits/model.h5

The data ships with scikit-learn (1,797 images), so this runs offline in about a minute
on two cores. The accuracy on the held-out quarter is printed and written to metrics.json.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tinygen.examples import digits_splits  # noqa: E402

HERE = Path(__file__).resolve().parent


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ], name="digits_cnn")


def main() -> None:
    tf.random.set_seed(0)
    np.random.seed(0)
    train, test = digits_splits()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.x, train.y, epochs=40, batch_size=64, verbose=0, validation_split=0.1)
    _, acc = model.evaluate(test.x, test.y, verbose=0)
    model.save(HERE / "model.h5", include_optimizer=False)
    (HERE / "metrics.json").write_text(json.dumps({"test_accuracy": round(float(acc), 4), "test_samples": len(test)}, indent=2) + "\n")
    print(f"test accuracy {acc:.4f} on {len(test)} held-out digits; wrote {HERE / 'model.h5'}")


if __name__ == "__main__":
    main()
