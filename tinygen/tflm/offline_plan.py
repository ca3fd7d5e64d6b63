"""tinygen's memory plan inside TFLM: an offset for every activation, written into the model's
`OfflineMemoryAllocation` metadata (TFLM's docs/memory_management.md, "Offline planned tensor
allocations"; read by micro_allocation_info.cc).

TFLM's GreedyMemoryPlanner places the offline-planned tensors first, at their offsets, and fits
what is left (the kernels' scratch buffers, which TFLM always plans itself) around them. So a plan
here is chosen by replaying exactly that (arena.plan_arena with the offsets): several first-fit
orders over TFLM's own lifetimes, each with the scratch buffers reserved or not, and the one
whose replayed head is smallest wins. The live-set bound (the most bytes alive at any operator,
scratch included) is what no buffer-per-tensor plan can go below.

The metadata is a buffer of int32: [version 1, subgraph count, tensor count n, n offsets], -1 for
"TFLM plans this one" (constants, variables). The model is rewritten with the tflite schema's
object API, never by editing bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import ModelError, TinygenError
from ..model.graph import Graph, parse
from .arena import ONLINE, ArenaPlan, Buffer, Target, _lifetimes, live_bytes, plan_arena, scratch_requests

METADATA_NAME = "OfflineMemoryAllocation"
FORMAT_VERSION = 1
PLANS = ("auto", "offline", "greedy")
_FILE_IDENTIFIER = b"TFL3"
_BUFFER_ALIGN = 16      # the schema's force_align for Buffer.data, which the Python builder ignores


@dataclass(frozen=True)
class OfflinePlan:
    offsets: list[int]      # one per tensor of the model; ONLINE where TFLM plans it
    head_bytes: int         # the head TFLM's planner lays out with these offsets, on the target
    bound_bytes: int        # the live-set bound on the target: no buffer-per-tensor plan goes below it
    order: str              # the first-fit order that won


@dataclass(frozen=True)
class PlanChoice:
    """Which memory plan the TFLM model carries, and what each would have cost on the board."""
    used: str               # "offline" (tinygen's), "greedy" (TFLM's own), or "model" (the one it came with)
    asked: str              # the --tflm-plan the user gave
    greedy_arena_bytes: int
    offline_arena_bytes: int | None    # None where tinygen cannot plan the model (several subgraphs)
    bound_head_bytes: int
    greedy_head_bytes: int
    offline_head_bytes: int | None
    offsets: tuple[int, ...] | None = None    # tinygen's plan, written or not

    def to_json(self) -> dict:
        return {"used": self.used, "asked": self.asked, "greedy_arena_bytes": self.greedy_arena_bytes,
                "offline_arena_bytes": self.offline_arena_bytes, "greedy_head_bytes": self.greedy_head_bytes,
                "offline_head_bytes": self.offline_head_bytes, "live_bound_head_bytes": self.bound_head_bytes}


def _first_fit(items: list[Buffer]) -> dict[str, int]:
    """Each buffer at the lowest offset clear of every placed buffer alive at the same time."""
    placed: list[tuple[int, Buffer]] = []
    where: dict[str, int] = {}
    for b in items:
        clashes = sorted((o, o + p.size) for o, p in placed if not (b.last < p.first or p.last < b.first))
        at = 0
        for lo, hi in clashes:
            if at + b.size <= lo:
                break
            at = max(at, hi)
        placed.append((at, b))
        where[b.name] = at
    return where


_ORDERS = {
    "largest first": lambda b: (-b.size, b.first),
    "longest-lived first": lambda b: (-(b.last - b.first), -b.size),
    "largest area first": lambda b: (-b.size * (b.last - b.first + 1), b.first),
    "in order of creation": lambda b: (b.first, -b.size),
}


def plan_offline(g: Graph, target: Target = Target()) -> OfflinePlan:
    """The offsets whose replayed head on `target` is smallest (ties: the first order tried)."""
    if g.subgraph_count != 1:
        raise TinygenError(f"tinygen plans the memory of one-subgraph models only, and this one has "
                           f"{g.subgraph_count} subgraphs; use --tflm-plan greedy.")
    buffers = _lifetimes(g, scratch_requests(g, target))
    tensors = [b for b in buffers if b.name.startswith("tensor ")]
    bound = max(live_bytes(buffers))
    best: OfflinePlan | None = None
    for name, key in _ORDERS.items():
        for reserve in (True, False):
            # Reserving the scratch buffers' place leaves TFLM a gap it finds first; not reserving
            # them packs the tensors tighter where no scratch buffer is alive.
            where = _first_fit(sorted(buffers if reserve else tensors, key=key))
            offsets = [ONLINE] * len(g.tensors)
            for b in tensors:
                offsets[int(b.name.split()[1])] = where[b.name]
            head = plan_arena(g, target, offsets).head_bytes
            if best is None or head < best.head_bytes:
                label = name + (", scratch reserved" if reserve and len(buffers) > len(tensors) else "")
                best = OfflinePlan(offsets, head, bound, label)
            if best.head_bytes == bound:
                return best
    return best


def check_offsets(plan: ArenaPlan) -> None:
    """That no two buffers alive at the same time share a byte (a wrong plan is wrong outputs)."""
    bs = sorted(plan.buffers, key=lambda b: plan.buffer_offsets[b.name])
    for i, a in enumerate(bs):
        a0 = plan.buffer_offsets[a.name]
        for b in bs[i + 1:]:
            b0 = plan.buffer_offsets[b.name]
            if b0 >= a0 + a.size:
                break
            if not (a.last < b.first or b.last < a.first):
                raise ModelError(f"The memory plan puts {a.name} ({a0}..{a0 + a.size}) and {b.name} "
                                 f"({b0}..{b0 + b.size}) in the same bytes while both are alive.")


def read_offsets(model_bytes: bytes, g: Graph | None = None) -> list[int] | None:
    """The model's offline plan (an offset or ONLINE per tensor), or None if it has none. With the
    graph of a model of several subgraphs: the offsets of the first (TFLM reads them concatenated)."""
    model = schema.Model.GetRootAs(model_bytes, 0)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() is None or md.Name().decode(errors="replace") != METADATA_NAME:
            continue
        data = model.Buffers(md.Buffer()).DataAsNumpy()
        words = np.frombuffer(np.asarray(data, np.uint8).tobytes(), "<i4") if not isinstance(data, int) else []
        if len(words) < 3 or len(words) < 3 + int(words[2]):
            raise ModelError(f"The {METADATA_NAME} metadata is shorter than the offsets it declares.")
        offsets = [int(x) for x in words[3:3 + int(words[2])]]
        if g is not None and g.subgraph_count > 1 and len(offsets) > len(g.tensors):
            return offsets[:len(g.tensors)]
        return offsets
    return None


class _AlignedBuilder(flatbuffers.Builder):
    """Byte vectors 16-aligned, as the tflite schema's `force_align: 16` asks (weights and biases
    are read in place by the kernels); the Python object API would otherwise align them to 1."""

    def StartVector(self, elemSize, numElems, alignment):
        return super().StartVector(elemSize, numElems, max(alignment, _BUFFER_ALIGN) if elemSize == 1 else alignment)


def write_offsets(model_bytes: bytes, offsets: list[int] | None) -> bytes:
    """The model with `offsets` as its OfflineMemoryAllocation metadata (replacing any it had);
    with None, without one."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    metadata = [md for md in (m.metadata or []) if _name(md.name) != METADATA_NAME]
    old = [md.buffer for md in (m.metadata or []) if _name(md.name) == METADATA_NAME]
    for b in old:    # an emptied buffer keeps every other buffer's index
        m.buffers[b].data = None
    if offsets is not None:
        words = np.array([FORMAT_VERSION, len(m.subgraphs), len(offsets), *offsets], "<i4")
        buf = schema.BufferT()
        buf.data = words.view(np.uint8)
        md = schema.MetadataT()
        md.name = METADATA_NAME
        if old:
            md.buffer = old[0]
            m.buffers[old[0]] = buf
        else:
            md.buffer = len(m.buffers)
            m.buffers.append(buf)
        metadata.append(md)
    m.metadata = metadata or None
    builder = _AlignedBuilder(len(model_bytes) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _name(n) -> str:
    return n.decode(errors="replace") if isinstance(n, bytes) else (n or "")


def choose(model_bytes: bytes, g: Graph, target: Target, asked: str = "auto") -> tuple[bytes, Graph, PlanChoice]:
    """The model with the memory plan `asked` for ("auto": whichever needs the smaller arena on `target`
    while AllocateTensors runs, TFLM's greedy plan on a tie), its graph, and both arenas."""
    if asked not in PLANS:
        raise TinygenError(f"--tflm-plan must be one of {', '.join(PLANS)}, not '{asked}'.")
    given = read_offsets(model_bytes, g) if g.has_offline_plan else None
    greedy = plan_arena(g, target)
    planned = given_plan = None
    if g.subgraph_count == 1:
        planned = plan_offline(g, target)
        offline_full = plan_arena(g, target, planned.offsets)
        check_offsets(offline_full)   # proven safe before any model carries it
    elif asked == "offline":
        plan_offline(g, target)     # says why not
    offline_arena = greedy.tail_bytes + planned.head_bytes if planned is not None else None
    if given is not None:
        given_plan = plan_arena(g, target, given)
    used = asked
    if asked == "auto":
        # by the arena the firmware reserves: AllocateTensors' peak (required_bytes), not what stays in use
        used = "offline" if planned is not None and offline_full.required_bytes < greedy.required_bytes else "greedy"
        best = min(greedy.required_bytes, offline_full.required_bytes if planned is not None else greedy.required_bytes)
        if given_plan is not None and given_plan.required_bytes <= best:
            used = "model"    # the plan it came with is no worse: keep the model as it is
    if used == "model":
        out = model_bytes
    elif used == "offline":
        out = write_offsets(model_bytes, planned.offsets)
    else:
        out = write_offsets(model_bytes, None) if given is not None else model_bytes
    out_graph = g if out is model_bytes else parse(out, "the planned model")
    choice = PlanChoice(used, asked, greedy.used_bytes, offline_arena, planned.bound_bytes if planned else greedy.head_bytes,
                        greedy.head_bytes, planned.head_bytes if planned else None,
                        tuple(planned.offsets) if planned else None)
    return out, out_graph, choice


def arena_plans(g: Graph, target: Target, model_bytes: bytes | None,
                choice: PlanChoice | None = None) -> tuple[ArenaPlan, dict[str, ArenaPlan]]:
    """The arena of the model as it is (with the offline plan it carries, if any), and for the
    memory timeline TFLM's greedy plan and tinygen's offline plan ("greedy", "offline")."""
    offsets = read_offsets(model_bytes, g) if g.has_offline_plan and model_bytes is not None else None
    plan = plan_arena(g, target, offsets)
    plans = {"greedy": plan if offsets is None else plan_arena(g, target)}
    if choice is not None and choice.offsets is not None:
        plans["offline"] = plan if choice.used == "offline" else plan_arena(g, target, list(choice.offsets))
    return plan, plans
