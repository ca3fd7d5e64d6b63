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
    import sys

    if "tensorflow" not in sys.modules:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # no GPU probing on a build machine
        with quiet():  # absl and CUDA-stub chatter at import and at device set-up
            import tensorflow

            tensorflow.config.list_logical_devices()
    import tensorflow

    tensorflow.get_logger().setLevel(logging.ERROR)
    return tensorflow


def keras():
    import tf_keras

    return tf_keras


class quiet:
    """Silence what TensorFlow's C++ core prints on fds 1 and 2 (converter chatter).
    The text is kept in `.text` for --verbose."""

    def __enter__(self):
        import sys
        import tempfile

        sys.stdout.flush()
        sys.stderr.flush()
        self._log = tempfile.TemporaryFile()
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._log.fileno(), 1)
        os.dup2(self._log.fileno(), 2)
        return self

    def __exit__(self, *exc):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        os.close(self._saved[0])
        os.close(self._saved[1])
        self._log.seek(0)
        self.text = self._log.read().decode(errors="replace")
        self._log.close()
        return False
