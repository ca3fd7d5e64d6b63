"""TensorFlow, imported once and only when needed (it takes seconds).

tensorflow-model-optimization works only with tf-keras (Keras 2), so TF_USE_LEGACY_KERAS
must be set before TensorFlow is first imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf():
    import logging

    import tensorflow

    tensorflow.get_logger().setLevel(logging.ERROR)
    return tensorflow


def keras():
    import tf_keras

    return tf_keras
