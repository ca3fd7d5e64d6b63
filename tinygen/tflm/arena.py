"""The tensor arena TFLite Micro needs for a model, computed the way TFLM computes it.

TFLM's arena has a head (non-persistent: activations and scratch buffers, laid out by
the GreedyMemoryPlanner) and a tail (persistent: the allocator's own objects, eval
tensors, node structs, parsed builtin options, kernel user data, per-channel
quantization arrays, input/output TfLiteTensors). `arena_used_bytes()` is head + tail.

The head is replayed exactly: the same lifetimes, the same 16-byte rounding, the same
size-descending bubble sort and first-fit search as greedy_memory_planner.cc. Scratch
buffers come from each kernel's Prepare (CMSIS-NN's get_buffer_size rules).

The tail is replayed allocation by allocation, in TFLM's order, with the alignment
padding of the downward-growing tail, using struct sizes measured per ABI
(tables/abi.toml). On a 32-bit Cortex-M every pointer-bearing struct is smaller than
on the 64-bit host, so the host interpreter's tail is never copied, it is recomputed.

An op whose kernel allocations are not modelled makes the result inexact: `exact` is
False and `unmodelled_ops` names them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import ModelError
from ..model.graph import Graph, Operator, padding_before

ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment()

# Ops whose parser allocates a builtin-params struct in the arena.
_PARAMS = {
    "CONV_2D": "TfLiteConvParams", "DEPTHWISE_CONV_2D": "TfLiteDepthwiseConvParams",
    "FULLY_CONNECTED": "TfLiteFullyConnectedParams", "AVERAGE_POOL_2D": "TfLitePoolParams",
    "MAX_POOL_2D": "TfLitePoolParams", "ADD": "TfLiteAddParams", "MUL": "TfLiteMulParams",
    "RESHAPE": "TfLiteReshapeParams", "SOFTMAX": "TfLiteSoftmaxParams",
    "CONCATENATION": "TfLiteConcatenationParams", "MEAN": "TfLiteReducerParams",
}
# Ops with no kernel user data and no persistent or scratch allocations.
_STATELESS = {"RESHAPE"}


@lru_cache(maxsize=None)
def _abi_table() -> dict:
    return tomllib.loads((Path(__file__).parent / "tables" / "abi.toml").read_text())


@dataclass(frozen=True)
class Target:
    """What the arena depends on: the ABI, the kernel set, and the core's DSP extension."""

    abi: str = "arm"                 # "arm" (32-bit AAPCS) or "host64"
    kernels: str = "cmsis-nn"        # "cmsis-nn" or "reference"
    dsp: bool = True                 # Cortex-M4/M7/M33 have the DSP extension; M0+ does not
    recording: bool = False          # the Python interpreter's RecordingMicroAllocator

    @classmethod
    def for_board(cls, board) -> "Target":
        if board.cpu == "host":
            return cls("host64", "reference", False)
        return cls("arm", board.kernels, board.cpu in ("cortex-m4", "cortex-m7", "cortex-m33"))


@dataclass
class Allocation:
    what: str
    size: int
    align: int
    padding: int = 0


@dataclass
class ArenaPlan:
    head_bytes: int
    tail_bytes: int
    scratch_bytes: list[int]
    tail: list[Allocation]
    buffer_offsets: dict[str, int]    # "tensor 12" / "scratch 0" -> offset in the head
    exact: bool
    unmodelled_ops: list[str] = field(default_factory=list)

    @property
    def used_bytes(self) -> int:
        return self.head_bytes + self.tail_bytes


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class _Tail:
    """SingleArenaBufferAllocator's tail: grows down from an aligned end, aligning each result down."""

    def __init__(self):
        self.top = 0  # distance from the arena end; the end is 16-aligned
        self.items: list[Allocation] = []

    def alloc(self, what: str, size: int, align: int) -> None:
        start = self.top + size
        aligned = _align_up(start, align)
        self.items.append(Allocation(what, size, align, aligned - start))
        self.top = aligned


@dataclass
class _ConvGeometry:
    n: int
    ic: int
    kh: int
    kw: int
    fc: int       # the filter's last dimension
    oc: int
    ph: int       # padding as TFLite computes it (SAME: centred, floor)
    pw: int
    dilation1: bool


def _conv_geometry(g: Graph, op: Operator) -> _ConvGeometry:
    inp, filt, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if len(inp.shape) != 4 or len(filt.shape) != 4 or len(out.shape) != 4 or op.options is None:
        raise ModelError(f"{op.op} (operator {op.index}) needs 4-dimensional input, filter and output and its "
                         "options to be planned.")
    n, ih, iw, ic = inp.shape
    _, kh, kw, fc = filt.shape
    _, oh, ow, oc = out.shape
    o = op.options
    same = o.padding == 0
    return _ConvGeometry(
        n, ic, kh, kw, fc, oc,
        padding_before(ih, kh, o.strideH, o.dilationHFactor, oh, same),
        padding_before(iw, kw, o.strideW, o.dilationWFactor, ow, same),
        o.dilationWFactor == 1 and o.dilationHFactor == 1,
    )


def _conv_scratch(g: Graph, op: Operator, t: Target) -> int:
    """CMSIS-NN arm_convolve_wrapper_s8_get_buffer_size for a non-MVE core (M0+, M4, M7)."""
    c = _conv_geometry(g, op)
    if c.pw == 0 and c.ph == 0 and c.kw == 1 and c.kh == 1 and c.dilation1 and c.ic == c.fc:
        return 0  # 1x1: the fast path needs a buffer only under armclang
    return 2 * _align_up(c.kw * c.kh * c.ic, 4) * 2


def _dwconv_scratch(g: Graph, op: Operator, t: Target) -> int:
    """CMSIS-NN arm_depthwise_conv_wrapper_s8_get_buffer_size for a non-MVE core."""
    c = _conv_geometry(g, op)
    if c.ic == c.oc and c.n == 1 and c.dilation1:
        if c.kw == 3 and c.kh == 3 and c.ph <= 1 and c.pw <= 1:
            return 0
        return c.ic * c.kw * c.kh * 2 if t.dsp else 0
    return 0


def _kernel_allocations(g: Graph, op: Operator, t: Target, sizes: dict) -> tuple[list, list, bool]:
    """(persistent allocations in Prepare, scratch requests, modelled?) for one op."""
    name, cmsis = op.op, t.kernels == "cmsis-nn"
    persistent: list[tuple[str, int]] = []
    scratch: list[int] = []
    int8ish = g.tensors[op.inputs[0]].dtype in ("INT8", "INT16") if op.inputs else False
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if int8ish:
            # filter is [out, h, w, in] for CONV_2D, [1, h, w, out] for DEPTHWISE_CONV_2D
            channels = g.tensors[op.inputs[1]].shape[0 if name == "CONV_2D" else 3]
            persistent += [("per-channel multipliers", 4 * channels), ("per-channel shifts", 4 * channels)]
        if cmsis and g.tensors[op.inputs[0]].dtype == "INT8":
            n = _conv_scratch(g, op, t) if name == "CONV_2D" else _dwconv_scratch(g, op, t)
            if n > 0:
                scratch.append(n)
        return persistent, scratch, True
    if name == "FULLY_CONNECTED":
        filt = g.tensors[op.inputs[1]]
        per_channel = filt.scale is not None and len(filt.scale) > 1
        if per_channel and int8ish:
            persistent += [("per-channel multipliers", 4 * filt.shape[0]), ("per-channel shifts", 4 * filt.shape[0])]
        out = g.tensors[op.outputs[0]]
        if cmsis and len(out.shape) > 2 and filt.shape[-1] % 4 == 0 and not per_channel:
            scratch.append(out.shape[-1] * 4 * 2)  # conv-1x1 path's per-channel arrays
        # arm_fully_connected_s8_get_buffer_size is 0 on non-MVE cores: no kernel sums.
        return persistent, scratch, True
    if name == "AVERAGE_POOL_2D":
        if cmsis and t.dsp and int8ish:
            scratch.append(g.tensors[op.inputs[0]].shape[3] * 4)
        return persistent, scratch, True
    if name in ("MAX_POOL_2D", "ADD", "MUL", "RESHAPE", "PAD", "CONCATENATION",
                "QUANTIZE", "DEQUANTIZE", "LOGISTIC"):
        return persistent, scratch, True
    if name in ("MEAN", "SUM"):
        inp, out, axis = (g.tensors[i] for i in (op.inputs[0], op.outputs[0], op.inputs[1]))
        if inp.dtype in ("INT8", "INT16"):
            scratch.append(4 * out.elements)          # accumulators
        scratch += [4 * len(inp.shape), 4 * axis.elements]  # input iterator, resolved axes
        return persistent, scratch, True
    if name == "SOFTMAX":
        return persistent, scratch, g.tensors[op.inputs[0]].dtype == "INT8"
    return persistent, scratch, False


def plan_arena(g: Graph, target: Target = Target()) -> ArenaPlan:
    """Replay TFLM's AllocateTensors for `g` on `target`."""
    sizes = _abi_table()[target.abi]
    kset = sizes["cmsis"] if target.kernels == "cmsis-nn" else sizes["ref"]
    ptr = sizes["pointer"][0]
    tail = _Tail()
    unmodelled: list[str] = []

    # MicroAllocator::Create: the buffer allocator, the planner, the allocator itself.
    if target.recording:
        tail.alloc("RecordingSingleArenaBufferAllocator", *sizes["RecordingSingleArenaBufferAllocator"])
        tail.alloc("GreedyMemoryPlanner", *sizes["GreedyMemoryPlanner"])
        tail.alloc("RecordingMicroAllocator", *sizes["RecordingMicroAllocator"])
    else:
        tail.alloc("SingleArenaBufferAllocator", *sizes["SingleArenaBufferAllocator"])
        tail.alloc("GreedyMemoryPlanner", *sizes["GreedyMemoryPlanner"])
        tail.alloc("MicroAllocator", *sizes["MicroAllocator"])
    # StartModelAllocation
    tail.alloc("MicroBuiltinDataAllocator", *sizes["MicroBuiltinDataAllocator"])
    s, a = sizes["SubgraphAllocations"]
    tail.alloc("SubgraphAllocations", s * g.subgraph_count, a)
    s, a = sizes["TfLiteEvalTensor"]
    tail.alloc("TfLiteEvalTensor[]", s * len(g.tensors), a)
    s, a = sizes["NodeAndRegistration"]
    tail.alloc("NodeAndRegistration[]", s * len(g.operators), a)
    # PrepareNodeAndRegistrationDataFromFlatbuffer: builtin options
    for op in g.operators:
        if op.op in _PARAMS:
            tail.alloc(f"{op.op} params", *sizes[_PARAMS[op.op]])
    # InitSubgraphs: kernel user data
    for op in g.operators:
        if op.op in _STATELESS:
            continue
        user = kset.get(op.op) or (sizes["ref"].get(op.op) if target.kernels == "cmsis-nn" else None)
        if user is None:
            unmodelled.append(op.op)
            continue
        tail.alloc(f"{op.op} user data", user[0], ARENA_ALIGNMENT)
    # PrepareSubgraphs: persistent buffers and scratch requests
    scratch: list[tuple[int, int]] = []  # (bytes, node index)
    for op in g.operators:
        try:
            persistent, requests, modelled = _kernel_allocations(g, op, target, sizes)
        except (IndexError, ValueError, AttributeError, TypeError) as e:
            # a verified model whose shapes or options this kernel's allocations cannot be read from
            raise ModelError(f"The arena of {op.op} (operator {op.index}) cannot be worked out from its tensors "
                             f"and options ({type(e).__name__}: {e}).") from None
        if not modelled and op.op not in unmodelled:
            unmodelled.append(op.op)
        for what, n in persistent:
            tail.alloc(f"{op.op} {what}", n, ARENA_ALIGNMENT)
        scratch += [(n, op.index) for n in requests]
    # FinishModelAllocation: scratch handles, then the static memory plan
    if scratch:
        s, a = sizes["ScratchBufferHandle"]
        tail.alloc("ScratchBufferHandle[]", s * len(scratch), a)
    for t in g.tensors:
        if t.is_variable:
            tail.alloc(f"variable {t.name}", t.nbytes, ARENA_ALIGNMENT)
    head, offsets = _greedy_plan(g, scratch)
    # MicroInterpreter::AllocateTensors: input and output TfLiteTensors
    for group, indices in (("input", g.inputs), ("output", g.outputs)):
        tail.alloc(f"{group} TfLiteTensor*[]", ptr * len(indices), ARENA_ALIGNMENT)
        for i in indices:
            t = g.tensors[i]
            tail.alloc(f"{group} TfLiteTensor", *sizes["TfLiteTensor"])
            if t.scale is not None and len(t.scale) > 0 and t.zero_point is not None and len(t.zero_point) > 0:
                tail.alloc(f"{group} quantization", *sizes["TfLiteAffineQuantization"])
                tail.alloc(f"{group} zero points", 4 + 4 * len(t.scale), sizes["TfLiteIntArray"][1])
    return ArenaPlan(
        head_bytes=head, tail_bytes=tail.top, scratch_bytes=[n for n, _ in scratch],
        tail=tail.items, buffer_offsets=offsets, exact=not unmodelled and not g.has_offline_plan,
        unmodelled_ops=unmodelled,
    )


def _lifetimes(g: Graph, scratch: list[tuple[int, int]]) -> list[tuple[str, int, int, int]]:
    """AllocationInfoBuilder: (name, bytes, first_created, last_used) of each planned buffer,
    tensors first in index order, then scratch buffers, as TFLM adds them to the planner."""
    first = [-1] * len(g.tensors)
    last = [-1] * len(g.tensors)

    def created(i, at):
        if first[i] == -1:
            first[i] = at

    def used(i, at):
        last[i] = at

    scope = 0
    for i in g.inputs:
        created(i, scope)
        used(i, scope)
    scratch_life: list[tuple[int, int]] = [(-1, -1)] * len(scratch)
    for op in g.operators:
        scope += 1
        for i in op.outputs:
            created(i, scope)
        start = scope
        for i in op.inputs:
            if i >= 0:
                used(i, scope)
        for i in op.outputs:
            used(i, scope)
        for k, (_, node) in enumerate(scratch):
            if node == op.index:
                scratch_life[k] = (start, scope)
    for i in g.outputs:
        created(i, scope)
        used(i, scope)
    buffers = []
    for t in g.tensors:
        if not t.is_const and not t.is_variable and t.nbytes > 0:
            buffers.append((f"tensor {t.index}", _align_up(t.nbytes, ARENA_ALIGNMENT), first[t.index], last[t.index]))
    for k, (n, _) in enumerate(scratch):
        buffers.append((f"scratch {k}", _align_up(n, ARENA_ALIGNMENT), *scratch_life[k]))
    return buffers


def _greedy_plan(g: Graph, scratch: list[tuple[int, int]]) -> tuple[int, dict[str, int]]:
    """GreedyMemoryPlanner::CalculateOffsetsIfNeeded, step for step."""
    buffers = _lifetimes(g, scratch)
    if not buffers:
        return 0, {}
    # Online buffers are written from the back of the sort arrays, then bubble-sorted by
    # size, largest first; the bubble sort is stable, so equal sizes keep reverse order.
    order = list(reversed(range(len(buffers))))
    sizes = [buffers[i][1] for i in order]
    swapped = True
    while swapped:
        swapped = False
        for k in range(1, len(order)):
            if sizes[k - 1] < sizes[k]:
                sizes[k - 1], sizes[k] = sizes[k], sizes[k - 1]
                order[k - 1], order[k] = order[k], order[k - 1]
                swapped = True
    placed: list[tuple[int, int]] = []  # (offset, buffer id), kept sorted by offset
    offsets: dict[int, int] = {}
    for bid in order:
        _, size, f, l = buffers[bid]
        candidate = 0
        for off, other in placed:  # sorted by offset: first fit between overlapping buffers
            _, osize, of, ol = buffers[other]
            if of > l or f > ol:
                continue
            if off - candidate >= size:
                break
            candidate = max(candidate, off + osize)
        offsets[bid] = candidate
        # insert after entries with offset <= candidate (TFLM inserts before the first larger one)
        pos = 0
        while pos < len(placed) and placed[pos][0] <= candidate:
            pos += 1
        if placed and placed[0][0] > candidate:
            pos = 0
        placed.insert(pos, (candidate, bid))
    head = max(offsets[b] + buffers[b][1] for b in offsets)
    return head, {buffers[b][0]: off for b, off in offsets.items()}
