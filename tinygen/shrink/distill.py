"""Knowledge distillation: fine-tune a thinner student on the original model's outputs.

Classifiers (a softmax output) learn the teacher's temperature-softened distribution
(Hinton et al.), plus the labels when there are any; other models regress the teacher's
outputs. No labels are needed."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _is_classifier(model) -> bool:
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", "") == "softmax" or type(last).__name__ == "Softmax"


def distill(teacher, student, x: np.ndarray, y: np.ndarray | None = None, epochs: int = 5, batch: int = 64,
            temperature: float = 4.0, label_weight: float = 0.5, learning_rate: float = 1e-3, seed: int = 0,
            training: bool = False, progress: Callable[[int, int, float], None] | None = None) -> list[float]:
    """Train `student` in place; returns the loss after each epoch. `training` runs the layers in
    training mode (QAT needs it: fake-quant ranges only move then)."""
    from ..model.tf import tf

    tf_ = tf()
    tf_.random.set_seed(seed)
    classifier = _is_classifier(teacher)
    soft_targets = teacher.predict(x, batch_size=256, verbose=0)
    from ..model.tf import keras

    opt = keras().optimizers.Adam(learning_rate)
    eps = 1e-7

    @tf_.function
    def step(xb, tb, yb, has_labels):
        with tf_.GradientTape() as tape:
            # BatchNorm stays in inference mode: a short fine-tune on little data would otherwise
            # train against batch statistics its lagging moving averages never catch up with
            out = student(xb, training=training)
            if classifier:
                # the models end in softmax: log-probabilities are the logits up to a constant
                t_soft = tf_.nn.softmax(tf_.math.log(tb + eps) / temperature)
                s_log_soft = tf_.nn.log_softmax(tf_.math.log(out + eps) / temperature)
                loss = -tf_.reduce_mean(tf_.reduce_sum(t_soft * s_log_soft, axis=-1)) * temperature ** 2
                if has_labels:
                    ce = tf_.reduce_mean(tf_.keras.losses.sparse_categorical_crossentropy(yb, out))
                    loss = (1 - label_weight) * loss + label_weight * ce
            else:
                loss = tf_.reduce_mean(tf_.square(out - tb))
        grads = tape.gradient(loss, student.trainable_variables)
        opt.apply_gradients(zip(grads, student.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    losses = []
    has_labels = y is not None and classifier
    yy = y if has_labels else np.zeros(len(x), dtype=np.int64)
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total, n = 0.0, 0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = step(tf_.constant(x[idx]), tf_.constant(soft_targets[idx]), tf_.constant(yy[idx]),
                        tf_.constant(has_labels))
            total += float(loss) * len(idx)
            n += len(idx)
        losses.append(total / n)
        if progress:
            progress(epoch + 1, epochs, losses[-1])
    return losses


def magnitude_prune(teacher, model, x: np.ndarray, sparsity: float, epochs: int = 5, batch: int = 64):
    """Unstructured magnitude pruning with tensorflow-model-optimization: sparsity rises along a
    polynomial decay while the model learns the teacher's outputs, then the wrappers are stripped."""
    import math

    import tensorflow_model_optimization as tfmot

    from ..model.tf import keras

    k = keras()
    steps = max(1, math.ceil(len(x) / batch) * epochs)
    # tfmot prunes every `frequency` steps (100 by default): too rare for a short fine-tune
    end = max(1, int(steps * 0.8))
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity,
                                                    begin_step=0, end_step=end, frequency=max(1, end // 10))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    loss = k.losses.KLDivergence() if _is_classifier(teacher) else "mse"
    pruned.compile(optimizer=k.optimizers.Adam(1e-3), loss=loss)
    targets = teacher.predict(x, batch_size=256, verbose=0)
    pruned.fit(x, targets, epochs=epochs, batch_size=batch, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def weight_sparsity(model) -> float:
    """Share of exactly-zero weights in the Conv2D, DepthwiseConv2D and Dense kernels."""
    zeros = total = 0
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense"):
            w = layer.get_weights()[0]
            zeros += int((w == 0).sum())
            total += w.size
    return zeros / total if total else 0.0
