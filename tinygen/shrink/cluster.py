"""Weight clustering (`tinygen shrink --cluster N`), the second stage of Deep Compression (Han et
al.): every weight tensor keeps at most N distinct values, stored as TFLM compressed tensors
(log2 N-bit indices into a small int8 table, per tensor or per output channel), and the model
image coded for storage and over-the-air updates.

With a Keras model and training data: tensorflow-model-optimization's clustering (its
sparsity-preserving form after unstructured pruning, so the zeros survive), fine-tuned by
distillation from the original, then int8. Without training data (an int8 .tflite given as the
model): k-means on the trained int8 weights, and the agreement with the unclustered int8 model
reported. Either way the int8 weights end with at most N values per tensor (or per channel),
which is what TFLM's look-up tables hold."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..boards import Board
from ..errors import ModelError, TinygenError
from ..files import check_out_dir, write_tree
from ..fit import check_fit
from ..model import coded
from ..model.data import Dataset, quantize_input
from ..model.evaluate import top1
from ..model.graph import Graph, parse
from ..tflm import compress as tflm_compress

MIN_CLUSTERS, MAX_CLUSTERS = 2, 128     # TFLM's tables: 1-7-bit indices
CLUSTER_FILES = ("model.keras", "model.tflite", "model.compressed.tflite", "model.coded", "cluster.json")
SYNTHETIC_SAMPLES = 64   # inputs for agreement when there is no data


def check_clusters(n: int) -> None:
    if not MIN_CLUSTERS <= n <= MAX_CLUSTERS:
        raise TinygenError(f"--cluster takes {MIN_CLUSTERS} to {MAX_CLUSTERS} centroids (TFLM's look-up tables hold "
                           f"1-7-bit indices), not {n}.")


# --- k-means on int8 weights -------------------------------------------------------------------

def _optimal_1d(pts: np.ndarray, wts: np.ndarray, k: int) -> np.ndarray:
    """The k centroids of sorted distinct values `pts` (weights `wts`) with the least weighted
    squared error: exact 1-D k-means by dynamic programming over contiguous segments (Wang and
    Song's Ckmeans.1d.dp); at most 256 values, so the table is small."""
    n = len(pts)
    if n <= k:
        return pts.astype(np.float64)
    c = [np.concatenate([[0.0], np.cumsum(a)]) for a in (wts, wts * pts, wts * pts * pts)]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        s, sx, sxx = (a[j + 1] - a[i] for a in c)
        cost = np.where(j >= i, sxx - sx * sx / s, np.inf)    # segment i..j around its mean
    best, starts = cost[0], []
    for _ in range(1, k):
        cand = best[:-1, None] + cost[1:, :]                  # last segment starts at row + 1
        starts.append(cand.argmin(0) + 1)
        best = cand.min(0)
    bounds, end = [], n - 1
    for start in reversed(starts):
        first = int(start[end])
        bounds.append((first, end))
        end = first - 1
    bounds.append((0, end))
    return np.array([np.average(pts[a:b + 1], weights=wts[a:b + 1]) for a, b in reversed(bounds)])


def kmeans_int8(w: np.ndarray, n: int, keep_zero: bool = True) -> np.ndarray:
    """`w` (int8) with at most `n` distinct values: the optimal 1-D k-means of its histogram
    (256 bins at most, so it is cheap at any tensor size), centroids rounded to int8. With
    `keep_zero`, zero is a centroid of its own when zeros are at least 1/n of the weights (a
    pruned tensor), so clustering does not undo pruning."""
    values, counts = np.unique(w, return_counts=True)
    if len(values) <= n:
        return w.copy()
    v = values.astype(np.float64)
    zero = keep_zero and 0 in values and counts[values == 0][0] * n >= w.size
    pts, wts = (v[v != 0], counts[v != 0]) if zero else (v, counts)
    centroids = np.unique(np.clip(np.round(_optimal_1d(pts, wts.astype(np.float64), n - 1 if zero else n)), -128, 127))
    if zero:
        centroids = np.union1d(centroids, [0.0])
    nearest = centroids[np.abs(v[:, None] - centroids[None, :]).argmin(1)]
    return nearest[np.searchsorted(values, w)].astype(np.int8)


def cluster_tensor(w: np.ndarray, n: int, axis: int | None, keep_zero: bool = True) -> np.ndarray:
    """k-means per tensor (`axis` None) or per slice along `axis` (per output channel)."""
    if axis is None:
        return kmeans_int8(w, n, keep_zero)
    moved = np.moveaxis(w, axis, 0)
    return np.moveaxis(np.stack([kmeans_int8(s, n, keep_zero) for s in moved]), 0, axis)


def cluster_int8(model_bytes: bytes, graph: Graph, n: int, per_channel: bool = False) -> bytes:
    """The int8 model with every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED weight clustered
    to at most `n` values (per tensor, or per output channel); nothing else changes."""
    def shared(i: int, w: np.ndarray) -> np.ndarray:
        # per channel only where the weight is quantized per channel: TFLM's tables follow it
        return cluster_tensor(w, n, tflm_compress.table_axis(graph, i) if per_channel else None)

    return rewrite_weights(model_bytes, graph, shared)


def prune_int8(model_bytes: bytes, graph: Graph, sparsity: float) -> bytes:
    """The int8 model with the smallest `sparsity` share of each CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED weight set to zero (post-training magnitude pruning; symmetric int8 weights,
    so 0 is a weight of 0). What the AOT runtime's sparse forms store without the zeros."""
    def pruned(i: int, w: np.ndarray) -> np.ndarray:
        k = int(sparsity * w.size)
        if k == 0:
            return w
        out = w.reshape(-1).copy()
        out[np.argsort(np.abs(out.astype(np.int16)), kind="stable")[:k]] = 0
        return out.reshape(w.shape)

    return rewrite_weights(model_bytes, graph, pruned)


def rewrite_weights(model_bytes: bytes, graph: Graph, fn) -> bytes:
    """The model with each weight tensor `i` (weight_tensors) replaced by fn(i, its int8 array),
    overwritten where it is in the flatbuffer: every other byte as it was (a model rebuilt by
    tflite-micro's model_editor was refused by TFLite's interpreter)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    out = bytearray(model_bytes)
    model = schema.Model.GetRootAs(out, 0)
    for i in tflm_compress.weight_tensors(graph):
        t = graph.tensors[i]
        buf = model.Buffers(t.buffer)
        if buf.Offset() > 1:     # data stored after the flatbuffer (models over 2 GB)
            view = np.frombuffer(memoryview(out)[buf.Offset():buf.Offset() + buf.Size()], np.int8)
        else:
            view = buf.DataAsNumpy().view(np.int8)
        view[:] = np.asarray(fn(i, view.reshape(t.shape).copy()), np.int8).reshape(-1)
    return bytes(out)


# --- clustering by index bits (the search, `build --compress`) -----------------------------------

INDEX_BITS = (7, 6, 5, 4, 3, 2)     # 2^b centroids: most accurate first; 1 bit rarely keeps a model


def check_bits(bits: int, option: str = "--compress") -> None:
    if bits not in INDEX_BITS:
        raise TinygenError(f"{option} takes off, auto or index bits from {min(INDEX_BITS)} to {max(INDEX_BITS)} "
                           f"(2^bits centroids per look-up table), not {bits}.")


@dataclass
class Clustered:
    """An int8 model clustered post-training to 2^bits values per tensor (or per channel), and the
    same model as TFLM compressed tensors (None where no weight gets smaller as a look-up table)."""
    bits: int
    per_channel: bool
    model: bytes                                        # the clustered int8 model, weights dense
    graph: Graph
    compressed: tflm_compress.CompressedModel | None

    @property
    def granularity(self) -> str:
        return "channel" if self.per_channel else "tensor"

    def stored(self, runtime: str) -> bytes | None:
        """The model as `runtime` stores it, for the fit check: TFLM's compressed tensors (None
        where nothing compresses), or for tinygen's AOT runtime the clustered int8 model, whose
        lowering decides per layer how to store the weights."""
        # the one place a storage form is picked per runtime; sparse storage (AOT) goes here too
        if runtime == "tflm":
            return self.compressed.model if self.compressed is not None else None
        return self.model


def granularities(graph: Graph) -> tuple[bool, ...]:
    """per_channel values worth trying: per channel only differs where a weight is quantized per
    channel (TFLM's tables follow the quantization: tflm_compress.table_axis)."""
    per_channel_weights = any(tflm_compress.table_axis(graph, i) is not None
                              for i in tflm_compress.weight_tensors(graph))
    return (True, False) if per_channel_weights else (False,)


def cluster_bits(model_bytes: bytes, graph: Graph, bits: int, per_channel: bool) -> Clustered:
    """Post-training k-means of every weight to 2^bits values, and TFLM's compressed tensors of it."""
    check_bits(bits)
    clustered = cluster_int8(model_bytes, graph, 1 << bits, per_channel)
    g = parse(clustered, "the clustered model")
    try:
        packed = tflm_compress.compress(clustered, g)
    except ModelError:       # TFLM's compressor refuses the model: the user must hear it
        raise
    except TinygenError:     # no weight is smaller as a look-up table at these bits
        packed = None
    return Clustered(bits, per_channel, clustered, g, packed)


# --- measuring ----------------------------------------------------------------------------------

@dataclass
class Agreement:
    samples: int
    inputs: str                      # what the inputs were
    top1_agreement: float            # share of samples whose top-1 class is unchanged
    mean_abs_diff_lsb: float         # mean |output difference| in int8 steps
    max_abs_diff_lsb: int
    accuracy_before: float | None = None   # with labels: top-1 accuracy of each model
    accuracy_after: float | None = None
    # with the float original: how far int8 quantization alone moves the outputs, for scale
    float_vs_int8_mean_abs_diff_lsb: float | None = None


def int8_inputs(graph: Graph, x: np.ndarray | None, n: int = SYNTHETIC_SAMPLES) -> np.ndarray:
    t = graph.tensors[graph.inputs[0]]
    if x is None:
        return tflm_compress.synthetic_inputs(graph, n)
    return np.stack([s if s.dtype == np.int8 else quantize_input(s, t.first_scale, t.first_zero_point)
                     for s in x]).reshape((len(x),) + tuple(t.shape[1:])).astype(np.int8)


def agreement(before: np.ndarray, after: np.ndarray, inputs: str, labels: np.ndarray | None = None) -> Agreement:
    d = np.abs(before.astype(np.int32) - after.astype(np.int32)).reshape(len(before), -1)
    flat_b, flat_a = before.reshape(len(before), -1), after.reshape(len(after), -1)
    acc = (lambda o: float(np.mean(top1(o) == labels))) if labels is not None else (lambda o: None)
    return Agreement(len(before), inputs, float(np.mean(top1(flat_b) == top1(flat_a))), float(d.mean()), int(d.max()),
                     acc(flat_b), acc(flat_a))


def float_vs_int8(original, graph: Graph, x_int8: np.ndarray, int8_out: np.ndarray) -> float:
    """Mean |difference| in output int8 steps between the float original (on the same inputs,
    dequantized) and the int8 model: the noise quantization alone adds."""
    from ..model.tf import quiet

    ti, to = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    xf = (x_int8.astype(np.float32) - ti.first_zero_point) * ti.first_scale
    with quiet():
        f = original.predict(xf.reshape((len(xf),) + tuple(original.input_shape[1:])), batch_size=64, verbose=0)
    fq = np.clip(np.round(f / to.first_scale + to.first_zero_point), -128, 127).reshape(len(xf), -1)
    return float(np.abs(fq - int8_out.reshape(len(xf), -1)).mean())


def float_tflite_bytes(keras_model) -> int:
    """The float32 original's size as a .tflite without any optimisation: what Deep Compression's
    ratio is taken against."""
    from ..model.tf import quiet, tf

    with quiet():
        return len(tf().lite.TFLiteConverter.from_keras_model(keras_model).convert())


def compression_table(float32_bytes: int | None, int8_bytes: int, pruned_bytes: int | None, clustered_bytes: int,
                      image: coded.Coded) -> dict:
    """The Deep Compression table: each stage's bytes, the coding chosen and all three sizes.
    pruned_bytes is the pruned int8 model as TFLM stores it (dense: pruning alone saves no flash)."""
    return {"float32_bytes": float32_bytes, "int8_bytes": int8_bytes, "pruned_bytes": pruned_bytes,
            "clustered_bytes": clustered_bytes, "coded_bytes": image.coded_bytes,
            "ratio": round(float32_bytes / image.coded_bytes, 2) if float32_bytes else None,
            "coding": image.method, "coded_sizes": image.sizes}


# --- the recipe ---------------------------------------------------------------------------------

@dataclass
class ClusterResult:
    board: Board
    clusters: int
    per_channel: bool
    method: str                              # "tfmot" (trained) or "k-means" (post-training)
    compression: dict
    agreement: Agreement                     # the compressed int8 model against the unclustered int8 one
    bit_exact: tflm_compress.BitExact        # TFLM on the compressed model against the clustered one
    index_bits: dict[int, int]
    dense_tensors: dict[int, str]
    per_tensor_weights: list[int]            # quantized per tensor: clustered per tensor whatever was asked
    fit: object                              # the fit report of the compressed model (TFLM)
    accuracy_float: float | None = None      # with a Keras model and labels: the original's float top-1
    sparsity: float | None = None
    train_seconds: float = 0.0
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"board": self.board.id, "clusters": self.clusters, "per_channel": self.per_channel,
                "method": self.method, "sparsity": self.sparsity, "accuracy_float": self.accuracy_float,
                "agreement": asdict(self.agreement), "bit_exact": asdict(self.bit_exact),
                "index_bits": {str(k): v for k, v in self.index_bits.items()},
                "dense_tensors": {str(k): v for k, v in self.dense_tensors.items()}, "per_tensor_weights": self.per_tensor_weights,
                "compression": self.compression, "fits": self.fit.fits,
                "flash_bytes": self.fit.flash.total_bytes, "sram_bytes": self.fit.sram.total_bytes,
                "train_seconds": round(self.train_seconds, 2),
                "out": str(self.out_dir) if self.out_dir else None, "files": self.files}


def _finish(board: Board, int8_model: bytes, clustered: bytes, n: int, per_channel: bool, method: str,
            x_int8: np.ndarray, inputs: str, labels: np.ndarray | None, float32_bytes: int | None,
            pruned_bytes: int | None, keras_bytes: bytes | None, out_dir: Path | None, force: bool,
            progress: Callable, original=None, **extra) -> ClusterResult:
    """Shared tail: compress with TFLM's tooling, check it bit-exact, measure agreement, code the
    image, fit-check the compressed model, write the files."""
    g_clustered = parse(clustered, "the clustered model")
    progress("Writing TFLM compressed tensors", None, None)
    packed = tflm_compress.compress(clustered, g_clustered)
    progress("Checking the compressed model in the tflite-micro interpreter", None, None)
    exact = tflm_compress.check_bit_exact(clustered, packed.model, x_int8)
    g_int8 = parse(int8_model, "the int8 model")
    from ..tflm.interpreter import host_arena_bytes

    before = tflm_compress.run(int8_model, x_int8, host_arena_bytes(g_int8))
    after = tflm_compress.run(clustered, x_int8, host_arena_bytes(g_clustered))
    agree = agreement(before, after, inputs, labels)
    if original is not None:
        agree.float_vs_int8_mean_abs_diff_lsb = float_vs_int8(original, g_int8, x_int8, before)
    progress("Coding the image (Huffman, zlib, lzma)", None, None)
    image = coded.code(packed.model)
    table = compression_table(float32_bytes, len(int8_model), pruned_bytes, len(packed.model), image)
    report = check_fit(parse(packed.model, "the compressed model"), board, "model.compressed.tflite")
    report.compression = table
    result = ClusterResult(board, n, per_channel, method, table, agree, exact, packed.bits, packed.skipped,
                           [i for i in packed.bits if tflm_compress.table_axis(g_clustered, i) is None], report,
                           **extra)
    if out_dir is not None:
        files = {"model.tflite": clustered, "model.compressed.tflite": packed.model, "model.coded": image.data}
        if keras_bytes is not None:
            files["model.keras"] = keras_bytes
        result.out_dir, result.files = out_dir, sorted(list(files) + ["cluster.json"])
        files["cluster.json"] = json.dumps(result.to_json(), indent=2) + "\n"
        write_tree(out_dir, files, force=force)
    return result


def cluster_int8_model(board: Board, model_bytes: bytes, n: int, per_channel: bool = False,
                       val: Dataset | None = None, original=None, out_dir: Path | None = None, force: bool = False,
                       progress: Callable[[str, int | None, int | None], None] = lambda *a: None) -> ClusterResult:
    """Post-training clustering of an int8 .tflite, without training data: k-means on its int8
    weights. Agreement with the unclustered model is measured on `val` when given, else on
    uniform random int8 inputs (said in the result). `original` is the float Keras model, for
    the table's float32 size."""
    check_clusters(n)
    if out_dir is not None:
        check_out_dir(out_dir, force, CLUSTER_FILES)
    g = parse(model_bytes, "the model")
    ok, op = g.is_full_int8()
    if not ok:
        raise TinygenError(f"Clustering without training data takes an int8 .tflite; this one's {op} is float.")
    progress(f"k-means to {n} centroids per {'channel' if per_channel else 'tensor'}", None, None)
    started = time.monotonic()
    clustered = cluster_int8(model_bytes, g, n, per_channel)
    seconds = time.monotonic() - started
    x = int8_inputs(g, None if val is None else val.x)
    inputs = (f"{len(x)} samples of {val.source}" if val is not None
              else f"{len(x)} uniform random int8 inputs (no data given)")
    float32 = float_tflite_bytes(original) if original is not None else None
    return _finish(board, model_bytes, clustered, n, per_channel, "k-means", x, inputs,
                   None if val is None else val.y, float32, None, None, out_dir, force, progress,
                   original=original, train_seconds=seconds)


def cluster_keras(board: Board, teacher, train: Dataset, val: Dataset, n: int, per_channel: bool = False,
                  prune: float | None = None, epochs: int = 10, out_dir: Path | None = None, force: bool = False,
                  progress: Callable[[str, int | None, int | None], None] = lambda *a: None) -> ClusterResult:
    """Train-time clustering: optional magnitude pruning (`prune`, tfmot), then tfmot's clustering
    (sparsity-preserving after pruning) fine-tuned by distillation from the original, stripped,
    quantized to int8 and, where per-channel int8 scales split a centroid, k-means'd back to
    `n` values per tensor or channel."""
    import tensorflow_model_optimization as tfmot

    from ..model import quantize as quantize_mod
    from ..model.source import ModelSource
    from ..model.tf import keras, quiet
    from .distill import distill, magnitude_prune, weight_sparsity
    from .recipe import keras_bytes

    check_clusters(n)
    if out_dir is not None:
        check_out_dir(out_dir, force, CLUSTER_FILES)
    k = keras()
    started = time.monotonic()
    progress("Quantizing the original", None, None)
    with quiet():
        float32 = float_tflite_bytes(teacher)
        int8_model = quantize_mod.quantize(ModelSource(Path("model.keras"), "keras"), train, teacher)
        accuracy_float = (float(np.mean(top1(teacher.predict(val.x, batch_size=256, verbose=0)) == val.y))
                          if val.y is not None else None)
    student = k.models.clone_model(teacher)
    student.set_weights(teacher.get_weights())
    pruned_bytes = None
    if prune is not None:
        progress(f"Magnitude pruning to {prune:.0%} (tensorflow-model-optimization)", None, None)
        student = magnitude_prune(teacher, student, train.x, prune, epochs=epochs)
        with quiet():
            pruned_bytes = len(quantize_mod.quantize(ModelSource(Path("model.keras"), "keras"), train, student))
    progress(f"Clustering to {n} centroids (tensorflow-model-optimization)", None, None)
    clustering = tfmot.clustering.keras
    init = clustering.CentroidInitialization.LINEAR   # Han et al.: linear keeps the large weights
    # after pruning, the sparsity-preserving form (tfmot's preserve_sparsity): the zero centroid stays zero
    wrapped = clustering.cluster_weights(student, number_of_clusters=n, cluster_centroids_init=init,
                                         preserve_sparsity=prune is not None, cluster_per_channel=per_channel)
    distill(teacher, wrapped, train.x, train.y, epochs=epochs, learning_rate=3e-4,
            progress=lambda e, total, loss: progress("Distilling the clustered model", e, total))
    student = clustering.strip_clustering(wrapped)
    sparsity = round(weight_sparsity(student), 4)
    progress("Quantizing the clustered model", None, None)
    with quiet():
        q = quantize_mod.quantize(ModelSource(Path("model.keras"), "keras"), train, student)
    # per channel: tfmot's N centroids are at most N int8 values in each channel's scale (TFLM's
    # tables follow the quantization), so this only bounds what rounding split
    clustered = cluster_int8(q, parse(q, "the clustered model"), n, per_channel=True)
    seconds = time.monotonic() - started
    x = int8_inputs(parse(int8_model), val.x)
    return _finish(board, int8_model, clustered, n, per_channel, "tfmot", x, f"{len(x)} samples of {val.source}",
                   val.y, float32, pruned_bytes, keras_bytes(student), out_dir, force, progress, original=teacher,
                   accuracy_float=accuracy_float, sparsity=sparsity if prune is not None else None,
                   train_seconds=seconds)


def is_int8_tflite(model: Path | None) -> bool:
    """Whether `model` names a .tflite (the post-training path); the file is checked later."""
    from ..model.source import detect

    return model is not None and detect(model).kind == "tflite"


def post_training_inputs(model: Path, val: Path | None, original: Path | None) -> tuple[bytes, Dataset | None, object]:
    """The int8 .tflite's bytes, held-out samples conformed to its input (or None), and the float
    Keras original named by --original (or None), each checked."""
    from ..model.data import conform, load_data
    from ..model.source import detect, load_keras

    model_bytes = model.read_bytes()
    g = parse(model_bytes, model.name)
    val_ds = None
    if val is not None:
        t = g.tensors[g.outputs[0]]
        val_ds = conform(load_data(val, "validation data"), g.tensors[g.inputs[0]].shape, "validation data",
                         t.shape[-1] if len(t.shape) == 2 else None)
    keras_original = None
    if original is not None:
        src = detect(original)
        if src.kind != "keras":
            raise TinygenError(f"--original names the float model the int8 one was made from, as Keras "
                               f"(.h5/.keras), not a {src.kind.replace('_', ' ')}.")
        keras_original = load_keras(src)
    return model_bytes, val_ds, keras_original
