"""The tensor arena TFLite Micro needs for a model, computed the way TFLM computes it.

TFLM's arena has a head (non-persistent: activations and scratch buffers, laid out by
the GreedyMemoryPlanner) and a tail (persistent: the allocator's own objects, eval
tensors, node structs, parsed builtin options, kernel user data, per-channel
quantization arrays, input/output TfLiteTensors). `arena_used_bytes()` is head + tail.

The head is replayed exactly: the same lifetimes, the same 16-byte rounding, the same
size-descending bubble sort and first-fit search as greedy_memory_planner.cc. Scratch
buffers come from each kernel's Prepare (CMSIS-NN's get_buffer_size rules). A model with an
offline plan (OfflineMemoryAllocation metadata, `offline` below) has those tensors at their
given offsets, placed first in tensor order, and the planner fits the rest around them.

The tail is replayed allocation by allocation, in TFLM's order, with the alignment
padding of the downward-growing tail, using struct sizes measured per ABI
(tables/abi.toml). On a 32-bit Cortex-M every pointer-bearing struct is smaller than
on the 64-bit host, so the host interpreter's tail is never copied, it is recomputed.

AllocateTensors needs more than head + tail while it runs, and an arena of
`used_bytes` can fail with it. While each op's Prepare runs, the head holds the array
of scratch-buffer requests, and above it the kernel's temporary TfLiteTensors (with a
quantization struct and a zero-point array per quantized tensor: a per-channel weight
or bias costs 4 bytes a channel), while the tail already holds everything earlier ops
allocated; while the memory plan is made, the AllocationInfo array and the greedy
planner's working arrays (40 bytes a buffer) sit above the request array. The replay
records every allocation in TFLM's order and `required_bytes` is the smallest arena
for which none of them fails (`required_phase` says which step needs it).

An op whose kernel allocations are not modelled makes the result inexact: `exact` is
False and `unmodelled_ops` names them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Sequence

from ..errors import ModelError
from ..model.graph import Graph, Operator, padding_before

ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment()
ONLINE = -1           # kOnlinePlannedBuffer: an offline plan's "TFLM plans this one"
MAX_SCRATCH_BUFFERS_PER_OP = 12   # kMaxScratchBuffersPerOp: request slots the head keeps free for the next op
PLANNER_BYTES_PER_BUFFER = 40     # GreedyMemoryPlanner::per_buffer_size(): 16 + 4 + 4 + 12 + 4, ints only
STEADY = "allocation"             # required_phase when head + tail (used_bytes) is what the arena needs
PLANNING = "memory planning"      # CommitStaticMemoryPlan's temporary arrays

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
# TFLM's DECODE (compressed tensors) has no Init; its Prepare allocates its own way (_decode_prepare).
DECODE = "CUSTOM:TFLM_DECODE"


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


@dataclass(frozen=True)
class Buffer:
    """One buffer of the head as TFLM's planner sees it: lifetimes in allocation scopes
    (0: the inputs, k + 1: operator k), size rounded up to 16."""
    name: str            # "tensor 12" / "scratch 0"
    size: int
    first: int
    last: int
    offline: int = ONLINE   # the offset an offline plan fixed, or ONLINE


@dataclass
class ArenaPlan:
    head_bytes: int
    tail_bytes: int
    scratch_bytes: list[int]
    tail: list[Allocation]
    buffer_offsets: dict[str, int]    # "tensor 12" / "scratch 0" -> offset in the head
    exact: bool
    unmodelled_ops: list[str] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)   # what the head's planner laid out
    offline: bool = False             # tensors placed by an offline plan
    # AllocateTensors step by step (_Event), for required_bytes; None: not replayed (an AOT arena)
    events: list | None = field(default=None, repr=False, compare=False)

    @property
    def used_bytes(self) -> int:
        return self.head_bytes + self.tail_bytes

    @cached_property
    def _required(self) -> tuple[int, str]:
        # found on demand: the bisection costs more than the replay, and planners call plan_arena often
        return (self.used_bytes, STEADY) if self.events is None else _smallest_arena(self.events, self.used_bytes)

    @property
    def required_bytes(self) -> int:
        """The arena to give TFLM: the smallest AllocateTensors succeeds with. It can sit a few bytes
        under used_bytes when the arena's end is not 16-aligned (the tail then starts lower and its
        first, less aligned structs use the odd bytes); a 16-byte multiple of it never does."""
        return self._required[0]

    @property
    def required_phase(self) -> str:
        """The step that needs required_bytes: STEADY, PLANNING or "Prepare of OP (operator k)"."""
        return self._required[1]

    @property
    def transient_bytes(self) -> int:
        """How far AllocateTensors' peak goes above used_bytes: 0 when head + tail sets the arena (an
        arena whose end is not 16-aligned may then still need a few bytes more or fewer than used_bytes)."""
        return 0 if self.required_phase == STEADY else max(0, self.required_bytes - self.used_bytes)

    def live_bytes(self) -> list[int]:
        """Bytes alive at each allocation scope (see live_bytes)."""
        return live_bytes(self.buffers)

    def high_water(self) -> list[int]:
        """The highest byte of the head in use at each allocation scope, with this plan's offsets."""
        top = [0] * _scopes(self.buffers)
        for b in self.buffers:
            end = self.buffer_offsets[b.name] + b.size
            for s in range(max(b.first, 0), b.last + 1):
                top[s] = max(top[s], end)
        return top


def _scopes(buffers: list[Buffer]) -> int:
    return max(1, max((b.last for b in buffers), default=-1) + 1)


def live_bytes(buffers: list[Buffer]) -> list[int]:
    """Bytes alive at each allocation scope (0: the inputs, k + 1: operator k): no plan that
    gives every buffer its own bytes needs less than the largest of these (the live-set bound)."""
    live = [0] * _scopes(buffers)
    for b in buffers:
        for s in range(max(b.first, 0), b.last + 1):
            live[s] += b.size
    return live


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class _Event:
    """One step of AllocateTensors on the SingleArenaBufferAllocator, for the replay of _fails."""
    kind: str     # "persist" (tail), "temp", "reset" (temps freed), "resize" (the head's one resizable
                  # buffer, at the arena start), "plan" (the greedy planner takes what is left)
    size: int     # bytes; for "plan", how many buffers it plans
    align: int
    phase: str
    live: int = -1    # of a temp, the leading bytes read again before it is freed (-1: all of them)


class _Tail:
    """SingleArenaBufferAllocator's tail: grows down from an aligned end, aligning each result down.
    Every allocation, and the head's temporary ones (temp, resize, ...), are also kept in order in
    `events`, to find the smallest arena they all fit in."""

    def __init__(self):
        self.top = 0  # distance from the arena end; the end is 16-aligned
        self.items: list[Allocation] = []
        self.events: list[_Event] = []
        self.phase = STEADY

    def alloc(self, what: str, size: int, align: int) -> None:
        start = self.top + size
        aligned = _align_up(start, align)
        self.items.append(Allocation(what, size, align, aligned - start))
        self.top = aligned
        self.events.append(_Event("persist", size, align, self.phase))

    def head(self, kind: str, size: int = 0, align: int = 1, live: int = -1) -> None:
        self.events.append(_Event(kind, size, align, self.phase, live))


def _fails(events: list[_Event], arena: int) -> str | None:
    """The phase of the first allocation that fails in an arena of `arena` bytes starting
    16-aligned (TFLM aligns the start; a firmware's end is aligned too, malloc's need not be),
    or None. SingleArenaBufferAllocator's checks, to the byte: a temp must end at or below the tail;
    the resizable buffer and the planner's arena are measured from the arena start; a tail
    allocation must stay at or above the head. TFLM does not check a tail allocation against the
    temps: a kernel that fetches its tensors and then allocates its per-channel arrays
    (FULLY_CONNECTED) writes them over its own temporary TfLiteTensors, and Prepare fails on the
    pointers it reads back when freeing them. Only bytes read again count (`live`): the arrays may
    cover the last tensor's quantized_dimension and zero-point array, which nothing reads."""
    head = temp = live = 0
    tail = arena
    for e in events:
        if e.kind == "persist":
            r = (tail - e.size) // e.align * e.align
            if r < max(head, live):
                return e.phase
            tail = r
        elif e.kind == "temp":
            r = _align_up(temp, e.align)
            # TFLM compares size_t differences: a start above the tail wraps round and passes
            if r <= tail and tail - r < e.size:
                return e.phase
            temp = r + e.size
            if e.live:
                live = max(live, r + (e.size if e.live < 0 else e.live))
        elif e.kind == "reset":
            temp = live = head
        elif e.kind == "resize":
            if tail < e.size:
                return e.phase
            head = temp = live = e.size
        elif e.kind == "plan":
            # GetAvailableMemory(16) between the temps and the tail, all of it to the planner
            lo, hi = _align_up(temp, ARENA_ALIGNMENT), tail // ARENA_ALIGNMENT * ARENA_ALIGNMENT
            if e.size and (hi < lo or (hi - lo) // e.align < e.size):
                return e.phase
            temp = live = max(temp, hi)
    return None


def _smallest_arena(events: list[_Event], used: int) -> tuple[int, str]:
    """(the smallest arena none of `events` fails in, the phase that fails one byte below it).
    Success only grows with the arena (every tail address moves up or stays), so bisect."""
    lo = max(0, used - 4 * ARENA_ALIGNMENT)
    while lo > 0 and _fails(events, lo) is None:
        lo = max(0, lo - 4 * ARENA_ALIGNMENT)
    hi, step = max(used, 1), 256
    while _fails(events, hi) is not None:
        lo, hi, step = hi + 1, hi + step, step * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if _fails(events, mid) is None:
            hi = mid
        else:
            lo = mid + 1
    return lo, (_fails(events, lo - 1) or STEADY) if lo > 0 else STEADY


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


def _prepare_temps(op: Operator, t: Target) -> tuple[list[int], list[int]]:
    """The tensors a kernel's Prepare fetches as temporary TfLiteTensors (AllocateTemp*Tensor), before
    and after its persistent allocations; temps are only freed once the op is prepared, so a
    tensor fetched twice costs twice. -1 (an absent optional input) fetches nothing."""
    name, cmsis = op.op, t.kernels == "cmsis-nn"
    ins, outs = op.inputs, op.outputs

    def inp(k: int) -> list[int]:
        return [ins[k]] if k < len(ins) and ins[k] >= 0 else []

    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        # Prepare's own fetches, the per-channel arrays, then CalculateOpData* fetches all four again.
        # (CMSIS-NN's conv asks for the bias as output 2, which does not exist: no temp.)
        first = inp(0) + inp(1) + outs[:1] if cmsis else outs[:1] + inp(0) + inp(1)
        return first, inp(0) + inp(1) + inp(2) + outs[:1]
    if name == "FULLY_CONNECTED":
        return inp(0) + inp(1) + inp(2) + outs[:1], []
    if name == "AVERAGE_POOL_2D" and cmsis:
        return inp(0) + outs[:1] + inp(0) + outs[:1], []   # PoolingPrepare's, then its own
    if name == "CONCATENATION":
        return inp(0) + outs[:1] + [i for i in ins if i >= 0], []
    if name in ("MEAN", "SUM"):
        return inp(0) + outs[:1] + inp(1), []
    if name == "RESHAPE":       # not the shape tensor
        return inp(0) + outs[:1], []
    if name == "TANH":          # TanhPrepare's input, then CalculateArithmeticOpData's input and output
        return inp(0) + inp(0) + outs[:1], []
    # PAD: input, paddings, [constant], output; ADD, MUL: both inputs, output; the rest one in, one out
    return [i for i in ins if i >= 0] + list(outs), []


def _temp_tensor(tail: _Tail, t, sizes: dict) -> None:
    """MicroAllocator::AllocateTempTfLiteTensor: the struct, and for a quantized tensor its
    TfLiteAffineQuantization and zero-point TfLiteIntArray (one int per channel). Of these, Prepare
    reads again the struct and the quantization's scale and zero_point pointers (freeing them),
    not the quantized_dimension after them nor the zero points (the kernels use params.zero_point)."""
    tail.head("temp", *sizes["TfLiteTensor"])
    if t.scale is not None and len(t.scale) > 0 and t.zero_point is not None and len(t.zero_point) > 0:
        tail.head("temp", *sizes["TfLiteAffineQuantization"], live=2 * sizes["pointer"][0])
        tail.head("temp", 4 + 4 * len(t.scale), sizes["TfLiteIntArray"][1], live=0)


def _decode_prepare(tail: _Tail, g: Graph, op: Operator, sizes: dict) -> None:
    """DECODE's Prepare (kernels/decode.cc): an array of one DecodeState pointer per output, then
    for each (encoded, ancillary) input pair and its output the three temporary tensors and the
    decoder's state. The decoded tensors themselves are ordinary outputs, planned in the head.
    The state is a LUT decoder's, the only kind tinygen writes; a pruning decoder's is the same
    after alignment, a Huffman decoder's 16 bytes less."""
    tail.alloc(f"{op.op} DecodeState*[]", sizes["pointer"][0] * len(op.outputs), ARENA_ALIGNMENT)
    for k, out in enumerate(op.outputs):
        for i in (op.inputs[2 * k], op.inputs[2 * k + 1], out):
            _temp_tensor(tail, g.tensors[i], sizes)
        tail.alloc(f"{op.op} DecodeStateLut", sizes["DecodeStateLut"][0], ARENA_ALIGNMENT)


def plan_arena(g: Graph, target: Target = Target(), offline: Sequence[int] | None = None) -> ArenaPlan:
    """Replay TFLM's AllocateTensors for `g` on `target`; `offline` is the model's offline plan
    (an offset or ONLINE per tensor, tflm.offline_plan.read_offsets), if it has one."""
    if offline is not None and len(offline) != len(g.tensors):
        raise ModelError(f"The offline memory plan has {len(offline)} offsets and the model {len(g.tensors)} tensors; "
                         "TFLM refuses it.")
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
    # StartModelAllocation; InitScratchBufferData makes the head room for one op's scratch requests
    tail.alloc("MicroBuiltinDataAllocator", *sizes["MicroBuiltinDataAllocator"])
    request, request_align = sizes["ScratchBufferRequest"]
    tail.head("resize", request * MAX_SCRATCH_BUFFERS_PER_OP, request_align)
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
        if op.op in _STATELESS or op.op == DECODE:
            continue
        user = kset.get(op.op) or (sizes["ref"].get(op.op) if target.kernels == "cmsis-nn" else None)
        if user is None:
            unmodelled.append(op.op)
            continue
        tail.alloc(f"{op.op} user data", user[0], ARENA_ALIGNMENT)
    # PrepareSubgraphs: persistent buffers and scratch requests
    scratch: list[tuple[int, int]] = []  # (bytes, node index)
    for op in g.operators:
        if op.op == DECODE:
            tail.phase = f"Prepare of {op.op} (operator {op.index})"
            _decode_prepare(tail, g, op, sizes)
            tail.head("reset")
            tail.head("resize", request * (len(scratch) + MAX_SCRATCH_BUFFERS_PER_OP), request_align)
            continue
        try:
            persistent, requests, modelled = _kernel_allocations(g, op, target, sizes)
            before, after = _prepare_temps(op, target)
        except (IndexError, ValueError, AttributeError, TypeError) as e:
            # a verified model whose shapes or options this kernel's allocations cannot be read from
            raise ModelError(f"The arena of {op.op} (operator {op.index}) cannot be worked out from its tensors "
                             f"and options ({type(e).__name__}: {e}).") from None
        if not modelled and op.op not in unmodelled:
            unmodelled.append(op.op)
        tail.phase = f"Prepare of {op.op} (operator {op.index})"
        for i in before:
            _temp_tensor(tail, g.tensors[i], sizes)
        for what, n in persistent:
            tail.alloc(f"{op.op} {what}", n, ARENA_ALIGNMENT)
        for i in after:
            _temp_tensor(tail, g.tensors[i], sizes)
        scratch += [(n, op.index) for n in requests]
        # FinishPrepareNodeAllocations: temps freed, the request array grown for the next op
        tail.head("reset")
        tail.head("resize", request * (len(scratch) + MAX_SCRATCH_BUFFERS_PER_OP), request_align)
    tail.phase = PLANNING
    # FinishModelAllocation: scratch handles, then the static memory plan
    if scratch:
        s, a = sizes["ScratchBufferHandle"]
        tail.alloc("ScratchBufferHandle[]", s * len(scratch), a)
    # CommitStaticMemoryPlan: AllocationInfo for every tensor and scratch buffer in temp memory
    tail.head("temp", sizes["size_t"][0] * g.subgraph_count, sizes["size_t"][1])
    info, info_align = sizes["AllocationInfo"]
    tail.head("temp", info * (len(g.tensors) + len(scratch)), info_align)
    for t in g.tensors:
        if t.is_variable and (offline is None or offline[t.index] == ONLINE):   # AllocateVariables
            tail.alloc(f"variable {t.name}", t.nbytes, ARENA_ALIGNMENT)
    buffers = _lifetimes(g, scratch, offline)
    head, offsets = _greedy_offsets(buffers)
    tail.head("plan", len(buffers), PLANNER_BYTES_PER_BUFFER)
    # temps freed, the request array dropped, the head set to the plan's size
    tail.phase = STEADY
    tail.head("reset")
    tail.head("resize", 0)
    tail.head("resize", head, ARENA_ALIGNMENT)
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
        tail=tail.items, buffer_offsets=offsets,
        exact=not unmodelled and (offline is not None or not g.has_offline_plan),
        unmodelled_ops=unmodelled, buffers=buffers, offline=offline is not None,
        events=tail.events,
    )


def scratch_requests(g: Graph, target: Target = Target()) -> list[tuple[int, int]]:
    """(bytes, operator index) of each scratch buffer the kernels ask for in Prepare, in order."""
    sizes = _abi_table()[target.abi]
    return [(n, op.index) for op in g.operators for n in _kernel_allocations(g, op, target, sizes)[1]]


def _lifetimes(g: Graph, scratch: list[tuple[int, int]], offline: Sequence[int] | None = None) -> list[Buffer]:
    """AllocationInfoBuilder: each planned buffer with its bytes, first_created and last_used,
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
        fixed = ONLINE if offline is None else offline[t.index]
        # needs_allocating: no data in the flatbuffer, and not a variable unless offline planned
        if not t.is_const and ((not t.is_variable and t.nbytes > 0) or (t.is_variable and fixed != ONLINE)):
            buffers.append(Buffer(f"tensor {t.index}", _align_up(t.nbytes, ARENA_ALIGNMENT),
                                  first[t.index], last[t.index], fixed))
    for k, (n, _) in enumerate(scratch):
        buffers.append(Buffer(f"scratch {k}", _align_up(n, ARENA_ALIGNMENT), *scratch_life[k]))
    return buffers


def _greedy_plan(g: Graph, scratch: list[tuple[int, int]]) -> tuple[int, dict[str, int]]:
    """GreedyMemoryPlanner::CalculateOffsetsIfNeeded for `g` without an offline plan."""
    return _greedy_offsets(_lifetimes(g, scratch))


def _greedy_offsets(buffers: list[Buffer]) -> tuple[int, dict[str, int]]:
    """GreedyMemoryPlanner::CalculateOffsetsIfNeeded, step for step."""
    if not buffers:
        return 0, {}
    # Offline-planned buffers go first, in the order they were added, and keep their offsets.
    # Online buffers are written from the back of the sort arrays, then bubble-sorted by
    # size, largest first; the bubble sort is stable, so equal sizes keep reverse order.
    fixed = [i for i, b in enumerate(buffers) if b.offline != ONLINE]
    order = list(reversed([i for i, b in enumerate(buffers) if b.offline == ONLINE]))
    sizes = [buffers[i].size for i in order]
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
    for bid in fixed + order:
        b = buffers[bid]
        candidate = 0 if b.offline == ONLINE else b.offline
        for off, other in placed if b.offline == ONLINE else ():
            o = buffers[other]    # sorted by offset: first fit between overlapping buffers
            if o.first > b.last or b.first > o.last:
                continue
            if off - candidate >= b.size:
                break
            candidate = max(candidate, off + o.size)
        offsets[bid] = candidate
        # insert after entries with offset <= candidate (TFLM inserts before the first larger one)
        pos = 0
        while pos < len(placed) and placed[pos][0] <= candidate:
            pos += 1
        if placed and placed[0][0] > candidate:
            pos = 0
        placed.insert(pos, (candidate, bid))
    head = max(offsets[b] + buffers[b].size for b in offsets)
    return head, {buffers[b].name: off for b, off in offsets.items()}
