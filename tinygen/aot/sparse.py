"""Sparse weights in the AOT runtime: a FULLY_CONNECTED or pointwise CONV_2D layer whose int8
weights are mostly exact zeros (an unstructured-pruned model) stored without them and run by
firmware/aot/tg_sparse.c, which walks only the weights kept.

Per output channel (a row: FULLY_CONNECTED's [out, in], a 1x1 filter's OHWI) the positions
kept are either a bitmask (depth / 8 bytes a row, in words read by CLZ: the smaller form where
more than about 1/8 of the weights are kept) or one byte per entry, the step from the entry
before (plus two bytes of count a row; a gap over 255 takes a filler entry of weight 0). The
weights kept are int8, or (sparse + LUT, a pruned and clustered model) b-bit indices into one
table. The choice between these, the LUT forms of aot/lut.py and dense int8 is lut.choose's,
by the bytes each stores (with its parameter block and, per kernel, the code it adds; indices
wider than lut.AUTO_BITS only when asked); this module offers the candidates.

Speed (QEMU, Cortex-M4, MLPerf's AD01 with every layer pruned to 80% at the int8 level): 8%
fewer instructions than dense int8 with int8 weights kept, 1.6x more with 4-bit LUT weights (a
table look-up per weight kept). A pointwise convolution walks a channel's entries once per two
pixels: faster than the dense kernel below about a quarter of the weights kept (VWW's pointwise
layer 14, 36% kept, takes 1.3x its dense instructions; layers 16-26, 1-10% kept, 2.4-9x fewer).
So a pointwise layer is offered sparse only at a quarter kept or less, and sparse + LUT only where
it stores at most two thirds of sparse int8's bytes.

The sums are the dense kernels' integer sums less zero products, and the folded bias
(bias - zero_point_in * sum(w)) is the same: bit-exact by construction. Larger k x k
convolutions and depthwise ones stay dense: in the MLPerf Tiny models the weights are in the
fully connected and pointwise layers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lower import AotError, Step
from .lut import bits_for, decode_stream, pack_stream, per_tensor_table
from .size import PARAM_BYTES

KERNELS = {"tg_fully_connected": "tg_sparse_fully_connected", "tg_conv2d_1x1": "tg_sparse_conv2d_1x1"}
PARAMS = {"tg_fully_connected": "tg_fully_connected_sparse_params", "tg_conv2d_1x1": "tg_conv_sparse_params"}
# the parameter block grows by a tg_sparse_weights (tg_sparse.h)
EXTRA_PARAM_BYTES = PARAM_BYTES["tg_conv_sparse_params"] - PARAM_BYTES["tg_conv_params"]
MAX_STEP = 255
# tg_sparse.c's deepest frames besides a decoded row (arm-none-eabi-gcc -fstack-usage, Cortex-M0+ / M4):
# tg_sparse_conv2d_1x1 64, sparse_rows 192 / 176, decode_row 64 / 56, tg_lut_decode 48 / 36
FRAME_BYTES = 64 + 192 + 64 + 48


@dataclass
class Sparse:
    """One weight tensor with its zeros left out."""
    kernel: str
    form: str                  # "mask" or "steps"
    index: np.ndarray          # uint8: the bitmask, or one step per entry
    counts: np.ndarray | None  # uint16 entries per row (steps)
    values: np.ndarray         # int8, one per entry (fillers included)
    bits: int                  # 0: int8 values; else the width of `indices` into `table`
    indices: np.ndarray | None = None
    table: np.ndarray | None = None
    max_row: int = 0

    @property
    def stored(self) -> int:
        kept = self.values.size if self.bits == 0 else self.indices.size + self.table.size
        return self.index.size + (0 if self.counts is None else 2 * self.counts.size) + kept

    @property
    def nbytes(self) -> int:
        return self.stored + EXTRA_PARAM_BYTES

    @property
    def stack_bytes(self) -> int:
        return FRAME_BYTES + ((self.max_row + 7) // 8 * 8 if self.bits else 0)

    def apply(self, step: Step, filt: np.ndarray, dense_bytes: int) -> None:
        apply(step, self, filt, dense_bytes)


def rows_of(step: Step, filt: np.ndarray) -> np.ndarray | None:
    """The weights as [output channel, depth], or None where no sparse kernel runs the step."""
    p = step.params
    if step.kernel == "tg_fully_connected":
        if p["folded_bias"] == "NULL":
            return None      # asymmetric weights: the reference path, left dense
        return np.asarray(filt, np.int8).reshape(p["out_depth"], p["in_depth"])
    if step.kernel == "tg_conv2d_1x1":
        return np.asarray(filt, np.int8).reshape(p["out_c"], p["in_c"])
    return None


def mask_form(w: np.ndarray) -> tuple[np.ndarray, None, np.ndarray]:
    """(bitmask, None, the weights kept). Per row, the first position in the top bit, as CLZ
    finds it (tg_sparse.c's walk_mask): each 32 positions a little-endian word, bit 31 - b for
    position b; the last depth % 32, a byte per 8, bit 7 - b for position b."""
    keep = w != 0
    rows = np.packbits(keep, axis=1, bitorder="big")
    words = rows.shape[1] // 4 * 4
    rows[:, :words] = rows[:, :words].reshape(len(rows), -1, 4)[:, :, ::-1].reshape(len(rows), -1)
    return rows.reshape(-1), None, w[keep]


def steps_form(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, entries per row, the weights of the entries), fillers of weight 0 where a gap
    passes MAX_STEP; None if a row would have more entries than a uint16 counts."""
    steps, counts, values = [], [], []
    for row in w:
        at = 0
        n = 0
        for p in np.flatnonzero(row):
            gap = int(p) - at
            while gap > MAX_STEP:
                steps.append(MAX_STEP)
                values.append(0)
                gap -= MAX_STEP
                n += 1
            steps.append(gap)
            values.append(int(row[p]))
            at = int(p)
            n += 1
        counts.append(n)
    if max(counts, default=0) > 0xFFFF:
        return None
    return np.array(steps, np.uint8), np.array(counts, np.uint16), np.array(values, np.int8)


def decode(s: Sparse, rows: int, depth: int) -> np.ndarray:
    """The dense [rows, depth] weights back from a Sparse, as tg_sparse.c walks them."""
    values = s.values if s.bits == 0 else s.table[decode_stream(s.indices, s.bits, s.values.size)]
    w = np.zeros((rows, depth), np.int64)
    k = 0
    if s.counts is None:
        m = s.index.reshape(rows, -1).copy()
        words = m.shape[1] // 4 * 4
        m[:, :words] = m[:, :words].reshape(rows, -1, 4)[:, :, ::-1].reshape(rows, -1)
        keep = np.unpackbits(m, axis=1, bitorder="big")[:, :depth].astype(bool)
        w[keep] = values[:int(keep.sum())]
        return w
    for r, n in enumerate(s.counts.tolist()):
        at = 0
        for _ in range(n):
            at += int(s.index[k])
            w[r, at] += int(values[k])
            k += 1
    return w


def candidates(step: Step, filt: np.ndarray) -> list[Sparse]:
    """Every sparse form of this step's weights: bitmask or steps, int8 or (where the weights
    kept hold at most 2^7 values) indices into one table. Empty for a dense layer or a kernel
    without a sparse form. lut.choose keeps the ones within its index width."""
    w = rows_of(step, filt)
    if w is None or np.count_nonzero(w) * 2 > w.size:
        return []     # not even half zeros: no sparse form is smaller than dense int8
    if step.kernel == "tg_conv2d_1x1" and np.count_nonzero(w) * 4 > w.size:
        return []     # a sparse pointwise layer is slower than the dense kernel above a quarter kept
    if not w.any():
        return []     # all zeros: nothing to store (C has no empty arrays); the dense kernel's dead channels
    kernel = KERNELS[step.kernel]
    forms = [("mask", mask_form(w)), ("steps", steps_form(w))]
    out = []
    for form, packed in forms:
        if packed is None:
            continue
        index, counts, values = packed
        per_row = (counts.astype(np.int64) if counts is not None else np.count_nonzero(w, axis=1))
        max_row = int(per_row.max(initial=0))
        plain = Sparse(kernel, form, index, counts, values, 0, max_row=max_row)
        out.append(plain)
        table = per_tensor_table(values) if values.size else None
        if table is not None:
            idx, tab = table
            bits = bits_for(tab.size)
            lut = Sparse(kernel, form, index, counts, values, bits, pack_stream(idx, bits), tab, max_row)
            # a table look-up per weight kept costs about 1.7x the instructions (AD01): worth it for
            # a third of the bytes, as lut.py's rule for fully connected layers
            if 3 * lut.stored <= 2 * plain.stored:
                out.append(lut)
    return out


def apply(step: Step, s: Sparse, filt: np.ndarray, dense_bytes: int) -> None:
    """Rewrite the dense step to call the sparse kernel on `s` (checked to decode to `filt`)."""
    k = f"op{step.op_index}"
    w = rows_of(step, filt)
    if not np.array_equal(decode(s, *w.shape), w):
        raise AotError(f"internal: the sparse weights of op {step.op_index} do not decode to its weights")
    arrays = []
    for name, ctype, values in step.arrays:
        if name == f"{k}_bias":
            continue      # the sparse kernels read only the folded bias
        if name != f"{k}_filter":
            arrays.append((name, ctype, values))
            continue
        arrays.append((f"{k}_index", "uint8_t", s.index))
        if s.counts is not None:
            arrays.append((f"{k}_counts", "uint16_t", s.counts))
        if s.bits:
            arrays += [(f"{k}_indices", "uint8_t", s.indices), (f"{k}_table", "int8_t", s.table)]
        else:
            arrays.append((f"{k}_values", "int8_t", s.values))
    base = "fc" if step.kernel == "tg_fully_connected" else "conv"
    params = {f"{base}.{key}": ("NULL" if key in ("filter", "bias") else v) for key, v in step.params.items()}
    params.update({"w.index": f"{k}_index", "w.counts": f"{k}_counts" if s.counts is not None else "NULL",
                   "w.values": "NULL" if s.bits else f"{k}_values"})
    if s.bits:
        params.update({"w.indices": f"{k}_indices", "w.table": f"{k}_table", "w.bits": s.bits,
                       "w.entries": s.table.size})
    params["w.max_row"] = s.max_row
    kept = int(np.count_nonzero(w))
    how = ("a bitmask per row" if s.form == "mask" else "a byte step per entry") + (
        f", {s.bits}-bit indices into one table of {s.table.size}" if s.bits else ", int8 values")
    step.comment += (f"; weights: sparse, {kept:,} of {w.size:,} kept, {how} ({s.stored:,} B, "
                     f"dense int8 {dense_bytes:,} B)")
    step.params_type = PARAMS[step.kernel]
    step.kernel = s.kernel
    step.arrays = arrays
    step.params = params
    step.source = "tg_sparse.c"
    step.needs = ("tg_lut.c",)    # tg_lut_decode
