"""Look-up-table weights in the AOT runtime: a weight tensor of CONV_2D, DEPTHWISE_CONV_2D or
FULLY_CONNECTED with few distinct int8 values (a clustered model) stored as b-bit indices
(b = 1..7) into a small int8 table, one per tensor or one per output channel, and run by the
kernels of firmware/aot/tg_lut.c, which decode the weights and reuse the dense dot products.

Per layer the form that stores fewer bytes wins (dense int8, or indices + tables + the larger
parameter block); a LUT kernel whose code costs more than its layers save is dropped again.
A model in TFLM's compressed-tensor format is first folded back to dense int8 weights (its
TFLM_DECODE operators decoded here as TFLM's LUT decoder does), then packed the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .lower import AotError, Program, Step
from .size import PARAM_BYTES

DECODE_OP = "CUSTOM:TFLM_DECODE"
MAX_BITS = 7
# Indices of up to this many bits are chosen without asking: a model clustered to 16 values or
# fewer (shrink --cluster's default) halves its weights or better. Wider ones mostly repack a
# trained model's layers that happen to hold few values, for at most 3/8 of their bytes, and the
# LUT kernels are slower than the dense ones: VWW's five 5-bit pointwise layers saved 28,728 B of
# flash (10%) for 12% more instructions (QEMU). They are taken where the weights were clustered
# on purpose: build --compress, the search's clustering, a model in TFLM's compressed format.
AUTO_BITS = 4
# A filter at most this large is decoded whole onto the stack and run by the dense kernel
# (firmware/aot/tg_lut.c: tg_lut_conv2d etc.); a larger pointwise one two filters at a time.
WHOLE_BYTES = 4096
FC_CHUNK = 256                          # TG_LUT_FC_CHUNK
LUT_WEIGHTS_BYTES = 8 * 4               # sizeof(tg_lut_weights): two pointers, six int32
CONV_PARAMS_BYTES, FC_PARAMS_BYTES = PARAM_BYTES["tg_conv_params"], PARAM_BYTES["tg_fully_connected_params"]
KERNELS = ("tg_lut_conv2d", "tg_lut_conv2d_1x1", "tg_lut_depthwise_conv2d", "tg_lut_pointwise",
           "tg_lut_fully_connected", "tg_lut_fully_connected_4")
# where each LUT kernel is, and the files it calls into
WHOLE = ("tg_lut_conv2d", "tg_lut_conv2d_1x1", "tg_lut_depthwise_conv2d")
FOLDED_ONLY = ("tg_lut_pointwise", "tg_lut_fully_connected", "tg_lut_fully_connected_4")
# the core whose measured kernel sizes weigh a LUT kernel's code against the bytes it saves
DECISION_CORE = "cortex-m4"


@dataclass
class Packed:
    """One weight tensor as indices into tables."""
    kernel: str
    bits: int
    entries: int
    per_channel: bool
    indices: np.ndarray        # uint8, the packed stream
    table: np.ndarray          # int8, entries per table
    stack_bytes: int

    @property
    def nbytes(self) -> int:
        return self.indices.size + self.table.size + LUT_WEIGHTS_BYTES


# --- packing ----------------------------------------------------------------------------

def bits_for(entries: int) -> int:
    return max(1, math.ceil(math.log2(entries))) if entries > 1 else 1


def pack_stream(indices: np.ndarray, bits: int) -> np.ndarray:
    """Index i at bits [i * bits, (i + 1) * bits), least significant first (tg_lut_decode)."""
    idx = np.asarray(indices, np.uint8).reshape(-1)
    bitplanes = ((idx[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bitplanes, bitorder="little")


def pack_pairs4(indices: np.ndarray, rows: int) -> np.ndarray:
    """tg_lut_fully_connected_4's layout: per row, each four indices (i..i+3) as two bytes,
    (i | i+2 << 4) and (i+1 | i+3 << 4); each four rows interleaved, a block of four columns at a
    time (the rows' two bytes in turn: eight bytes), so that the kernel walks them with one
    pointer; the last rows % 4 rows one after another."""
    q = np.asarray(indices, np.uint8).reshape(rows, -1, 4)
    pairs = np.stack([q[:, :, 0] | (q[:, :, 2] << 4), q[:, :, 1] | (q[:, :, 3] << 4)], axis=-1)
    full = rows // 4 * 4
    grouped = pairs[:full].reshape(full // 4, 4, pairs.shape[1], 2).transpose(0, 2, 1, 3)
    return np.concatenate([grouped.reshape(-1), pairs[full:].reshape(-1)]).astype(np.uint8)


def unpack_pairs4(packed: np.ndarray, rows: int) -> np.ndarray:
    """pack_pairs4's indices back, row-major."""
    pairs = np.asarray(packed, np.uint8).reshape(-1, 2)
    full = rows // 4 * 4
    blocks = pairs.shape[0] // rows
    head = pairs[:full * blocks].reshape(full // 4, blocks, 4, 2).transpose(0, 2, 1, 3).reshape(-1, 2)
    pairs = np.concatenate([head, pairs[head.shape[0]:]])
    return np.stack([pairs[:, 0] & 15, pairs[:, 1] & 15, pairs[:, 0] >> 4, pairs[:, 1] >> 4], axis=1).reshape(-1)


def decode_stream(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    planes = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[:count * bits].reshape(count, bits)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=1).astype(np.int64)


def per_tensor_table(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(each weight's index, the table): the sorted distinct values; None past 7 bits."""
    values, idx = np.unique(flat, return_inverse=True)
    return None if bits_for(len(values)) > MAX_BITS else (idx.astype(np.uint8), values.astype(np.int8))


def per_channel_tables(flat: np.ndarray, channel_of: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(each weight's index in its channel's table, the tables flattened, entries per table):
    each channel's sorted distinct values, the shorter tables padded; None past 7 bits."""
    uniq = [np.unique(flat[channel_of == c]) for c in range(channels)]
    entries = max(len(u) for u in uniq)
    if bits_for(entries) > MAX_BITS:
        return None
    table = np.zeros((channels, entries), np.int8)
    idx = np.empty(flat.size, np.uint8)
    for c, u in enumerate(uniq):
        table[c, :len(u)] = u
        sel = channel_of == c
        idx[sel] = np.searchsorted(u, flat[sel])
    return idx, table.reshape(-1), entries


def candidates(step: Step, filt: np.ndarray) -> list[Packed]:
    """Every LUT form this step's kernel has for these weights (its filter array as lowered)."""
    p = step.params
    n = filt.size
    flat = filt.reshape(-1).astype(np.int8)
    out: list[Packed] = []
    if step.kernel == "tg_fully_connected":
        if p["folded_bias"] == "NULL":
            return []     # asymmetric weights: the reference path, left dense
        rows, depth = p["out_depth"], p["in_depth"]
        channel_of = np.repeat(np.arange(rows), depth)
        layouts = [("tg_lut_fully_connected", 4 * FC_CHUNK + FC_PARAMS_BYTES)]
    else:
        oc = p["out_c"]
        depthwise = step.kernel == "tg_depthwise_conv2d"
        channel_of = np.tile(np.arange(oc), n // oc) if depthwise else np.repeat(np.arange(oc), n // oc)
        whole = {"tg_conv2d": "tg_lut_conv2d", "tg_conv2d_1x1": "tg_lut_conv2d_1x1",
                 "tg_depthwise_conv2d": "tg_lut_depthwise_conv2d"}.get(step.kernel)
        if whole is None:
            return []
        if n <= WHOLE_BYTES:
            layouts = [(whole, _round8(n) + CONV_PARAMS_BYTES)]
        elif step.kernel == "tg_conv2d_1x1":
            layouts = [("tg_lut_pointwise", _round8(2 * p["in_c"]) + CONV_PARAMS_BYTES)]
        else:
            return []     # no kernel walks a large k x k filter a channel at a time yet: dense
    per_tensor = per_tensor_table(flat)
    if per_tensor is not None:
        idx, table = per_tensor
        entries = table.size
        bits = bits_for(entries)
        for kernel, stack in layouts:
            out.append(Packed(kernel, bits, entries, False, pack_stream(idx, bits), table, stack))
        if (step.kernel == "tg_fully_connected" and entries <= 16 and p["in_depth"] % 4 == 0):
            padded = np.zeros(16, np.int8)
            padded[:entries] = table
            # the pair table, and the four-row loop's nine saved registers
            out.append(Packed("tg_lut_fully_connected_4", 4, 16, False, pack_pairs4(idx, p["out_depth"]), padded,
                              256 * 4 + 9 * 4 + FC_PARAMS_BYTES))
    channels = int(channel_of.max()) + 1
    per_channel = per_channel_tables(flat, channel_of, channels) if channels > 1 else None
    if per_channel is not None:
        idx, table, entries = per_channel
        bits = bits_for(entries)
        for kernel, stack in layouts:
            out.append(Packed(kernel, bits, entries, True, pack_stream(idx, bits), table, stack))
    return out


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def decode(packed: Packed, count: int, channels: int, depthwise: bool) -> np.ndarray:
    """The weights back from a Packed, as tg_lut_decode reads them (checked at lowering)."""
    if packed.kernel == "tg_lut_fully_connected_4":
        return packed.table[unpack_pairs4(packed.indices, channels).astype(np.int64)]
    idx = decode_stream(packed.indices, packed.bits, count)
    if not packed.per_channel:
        return packed.table[idx]
    ch = np.arange(count) % channels if depthwise else np.arange(count) // (count // channels)
    return packed.table[ch * packed.entries + idx]


# --- the choice per layer -----------------------------------------------------------------

def _apply(step: Step, packed: Packed, filt: np.ndarray, dense_bytes: int) -> None:
    k = f"op{step.op_index}"
    fc = step.op == "FULLY_CONNECTED"
    depthwise = step.kernel == "tg_depthwise_conv2d"
    channels = step.params["out_depth"] if fc else step.params["out_c"]
    if not np.array_equal(decode(packed, filt.size, channels, depthwise), filt.reshape(-1)):
        raise AotError(f"internal: the look-up-table weights of op {step.op_index} do not decode to its weights")
    # these kernels read only the folded bias (the dense bias serves border windows, which they have none of)
    folded_only = packed.kernel in FOLDED_ONLY
    arrays = []
    for name, ctype, values in step.arrays:
        if folded_only and name == f"{k}_bias":
            continue
        if name == f"{k}_filter":
            arrays += [(f"{k}_indices", "uint8_t", packed.indices), (f"{k}_table", "int8_t", packed.table)]
        else:
            arrays.append((name, ctype, values))
    base = "fc" if fc else "conv"
    params = {f"{base}.{key}": ("NULL" if key == "filter" or (key == "bias" and folded_only) else v)
              for key, v in step.params.items()}
    n = filt.size
    params.update({"w.indices": f"{k}_indices", "w.table": f"{k}_table", "w.bits": packed.bits,
                   "w.entries": packed.entries, "w.count": n, "w.per_channel": int(packed.per_channel),
                   "w.channel_elems": 0 if depthwise or not packed.per_channel else n // channels,
                   "w.channels_minor": channels if depthwise and packed.per_channel else 0})
    step.arrays = arrays
    step.params = params
    step.params_type = "tg_fully_connected_lut_params" if fc else "tg_conv_lut_params"
    step.kernel = packed.kernel
    step.source = "tg_lut_conv.c" if packed.kernel in WHOLE else "tg_lut.c"
    step.needs = ("tg_lut.c", "tg_conv.c") if packed.kernel in WHOLE else ()
    how = ("4-bit index pairs into one table of 16" if packed.kernel == "tg_lut_fully_connected_4" else
           f"{packed.bits}-bit indices into {'one table per output channel' if packed.per_channel else 'one table'}"
           f" of {packed.entries}")
    step.comment += (f"; weights: {how} ({packed.indices.size + packed.table.size:,} B, "
                     f"dense int8 {dense_bytes:,} B)")


def _code_bytes(kernels: set[str]) -> int:
    from .size import table

    per_kernel = table()["cores"][DECISION_CORE]
    union: dict[str, int] = {}
    for k in kernels:
        union.update(per_kernel.get(k, {}))
    return sum((s + 3) // 4 * 4 for s in union.values())


def choose(program: Program, max_bits: int = AUTO_BITS, extra=None) -> dict[int, Packed]:
    """Store each weight tensor as LUT indices of at most `max_bits` bits where that takes fewer
    bytes, counting the larger parameter block and, per LUT kernel, the code it adds over the
    dense kernels. Rewrites the chosen steps in place; returns {step index: what it stores}.
    extra(step, filter): further forms to weigh the same way (aot/sparse.py's: objects with
    kernel, bits, nbytes, stack_bytes and apply(step, filter, dense bytes))."""
    best: dict[int, tuple[Packed, np.ndarray, int]] = {}
    for i, s in enumerate(program.steps):
        if s.op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or s.kernel is None:
            continue
        filt = next((v for n, _, v in s.arrays if n == f"op{s.op_index}_filter"), None)
        if filt is None:
            continue
        more = extra(s, np.asarray(filt)) if extra is not None else []
        options = [c for c in candidates(s, np.asarray(filt)) + more if c.bits <= max_bits]
        if options:
            p = min(options, key=lambda c: c.nbytes)
            # the paired 4-bit form pads its table to 16 values; for up to 16 bytes it runs a fully
            # connected layer about as fast as dense weights instead of decoding every weight
            fast = [c for c in options if c.kernel == "tg_lut_fully_connected_4" and c.nbytes <= p.nbytes + 16]
            p = fast[0] if fast else p
            # a fully connected layer reads each weight once per inference, so decoding them costs
            # about three times the dense kernel's instructions: worth it for a third of the bytes
            slow = p.kernel == "tg_lut_fully_connected" and 3 * p.nbytes > 2 * filt.size
            if p.nbytes < filt.size and not slow:
                best[i] = (p, np.asarray(filt), filt.size)
    # a LUT kernel stays only if its layers save more than the code it brings
    for kernel in sorted({p.kernel for p, _, _ in best.values()}):
        mine = [i for i, (p, _, _) in best.items() if p.kernel == kernel]
        saved = sum(n - p.nbytes for p, _, n in (best[i] for i in mine))
        with_lut = {p.kernel for p, _, _ in best.values()} | {s.kernel for j, s in enumerate(program.steps)
                                                             if s.kernel and j not in best}
        without = (with_lut - {kernel}) | {program.steps[i].kernel for i in mine}
        if saved <= _code_bytes(with_lut) - _code_bytes(without):
            for i in mine:
                del best[i]
    for i, (p, filt, n) in best.items():
        if isinstance(p, Packed):
            _apply(program.steps[i], p, filt, n)
        else:
            p.apply(program.steps[i], filt, n)
    return {i: p for i, (p, _, _) in best.items()}


def stack_bytes(program: Program, chosen: dict[int, Packed]) -> int:
    """The largest stack buffer a LUT kernel adds: decoded weights (or the pair table) and its
    copy of the parameter block."""
    return max((p.stack_bytes for p in chosen.values()), default=0)


# --- TFLM's compressed tensors, folded back ------------------------------------------------

def fold_decode(model_bytes: bytes) -> bytes | None:
    """The model with each TFLM_DECODE operator's outputs turned into constant tensors holding
    what TFLM's LUT decoder (decode_state_lut.cc) writes, and the operators gone; None when the
    model has none. AotError for a decode type other than LUT."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    codes = [oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode for oc in m.operatorCodes]

    def data(b: int) -> bytes:
        buf = m.buffers[b]
        if buf.offset > 1:
            return model_bytes[buf.offset:buf.offset + buf.size]
        return np.asarray(buf.data, np.uint8).tobytes() if buf.data is not None else b""

    found = False
    for sg in m.subgraphs:
        keep = []
        for o in sg.operators or []:
            if codes[o.opcodeIndex] != "TFLM_DECODE":
                keep.append(o)
                continue
            found = True
            ins, outs = list(o.inputs), list(o.outputs)
            for k, out in enumerate(outs):
                enc, anc = sg.tensors[ins[2 * k]], sg.tensors[ins[2 * k + 1]]
                t = sg.tensors[out]
                values = decode_lut(data(enc.buffer), data(anc.buffer), t)
                m.buffers.append(schema.BufferT())
                m.buffers[-1].data = np.frombuffer(values.tobytes(), np.uint8)
                t.buffer = len(m.buffers) - 1
        sg.operators = keep
    if not found:
        return None
    b = flatbuffers.Builder(len(model_bytes) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def decode_lut(encoded: bytes, ancillary: bytes, tensor) -> np.ndarray:
    """One tensor as TFLM's LUT decoder expands it: indices packed most significant bit first,
    tables `stride` apart, one per quantization scale of the output (along its last axis when
    that is the quantized dimension, else the first)."""
    if len(ancillary) < 16 or ancillary[0] != 0:
        raise AotError(f"A TFLM_DECODE of tensor '{_name(tensor)}' is not a look-up table (decode type "
                       f"{ancillary[0] if ancillary else '?'}); tinygen's AOT runtime folds LUT compression only.")
    if tensor.type != 9:     # TensorType.INT8
        raise AotError(f"TFLM_DECODE writes tensor '{_name(tensor)}' of a type other than int8; tinygen's AOT "
                       "runtime takes int8 weights.")
    bits, stride = ancillary[5] & 7, ancillary[6]
    tables = np.frombuffer(ancillary[16:], np.int8)
    shape = [int(d) for d in tensor.shape]
    count = math.prod(shape)
    planes = np.unpackbits(np.frombuffer(encoded, np.uint8), bitorder="big")
    if bits == 0 or planes.size < count * bits:
        raise AotError(f"TFLM_DECODE of tensor '{_name(tensor)}' holds {len(encoded)} bytes of {bits}-bit indices "
                       f"for {count} values.")
    idx = (planes[:count * bits].reshape(count, bits) << np.arange(bits - 1, -1, -1)).sum(axis=1)
    q = tensor.quantization
    channels = len(q.scale) if q is not None and q.scale is not None else 1
    if channels > 1:
        last = q.quantizedDimension == len(shape) - 1
        channel = np.arange(count) % channels if last else np.arange(count) // (count // channels)
        idx = channel * stride + idx
    if idx.max(initial=0) >= tables.size:
        raise AotError(f"TFLM_DECODE of tensor '{_name(tensor)}' indexes past its value tables.")
    return tables[idx].reshape(shape)


def _name(tensor) -> str:
    n = tensor.name
    return n.decode(errors="replace") if isinstance(n, bytes) else str(n)
