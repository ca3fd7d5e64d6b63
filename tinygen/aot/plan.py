"""The AOT arena: one static buffer, every activation at an offset planned on the host from
its lifetime; element-wise ops write over an input that dies there."""

from __future__ import annotations

from dataclasses import dataclass

from .lower import AotError, Program

ALIGN = 4   # int8 buffers need none; float ones (QUANTIZE in, DEQUANTIZE out) need 4


@dataclass
class MemoryPlan:
    offsets: dict[int, int]      # tensor -> byte offset in the arena
    size: int                    # bytes
    in_place: list[int]          # step indices whose output shares its input's bytes
    heuristic: str
    group: dict[int, int]        # tensor -> the tensor whose bytes it shares (itself if none)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(program: Program) -> MemoryPlan:
    """Offsets for every activation: the smallest of a few first-fit orders, after merging
    each in-place output with its input. Two buffers share bytes only if their lifetimes
    (first write .. last read, in step order) do not overlap."""
    bufs = program.buffers
    # In-place: an element-wise step whose first input dies at this step and is as large
    # as the output takes the input's bytes.
    group = {t: t for t in bufs}
    in_place = []
    for i, s in enumerate(program.steps):
        if not s.in_place_ok or not s.inputs:
            continue
        src = group[s.inputs[0]]
        if (bufs[s.inputs[0]].last == i and bufs[s.inputs[0]].nbytes == bufs[s.output].nbytes
                and s.inputs[0] not in program.outputs and s.output not in program.inputs
                and all(group[t] != src for t in s.inputs[1:])):
            group[s.output] = src
            in_place.append(i)
    merged: dict[int, list[int]] = {}
    for t, g in group.items():
        merged.setdefault(g, []).append(t)
    items = []   # (group root, size, first, last)
    for g, members in merged.items():
        items.append((g, _align(max(bufs[t].nbytes for t in members)),
                      min(bufs[t].first for t in members), max(bufs[t].last for t in members)))

    def first_fit(order) -> tuple[int, dict[int, int]]:
        placed: list[tuple[int, int, int, int]] = []   # offset, size, first, last
        where = {}
        for g, size, first, last in order:
            clashes = sorted((o, o + sz) for o, sz, f, l in placed if not (last < f or l < first))
            at = 0
            for lo, hi in clashes:
                if at + size <= lo:
                    break
                at = max(at, hi)
            placed.append((at, size, first, last))
            where[g] = at
        return max((o + sz for o, sz, _, _ in placed), default=0), where

    orders = {
        "largest first": sorted(items, key=lambda it: (-it[1], it[2])),
        "longest-lived first": sorted(items, key=lambda it: (-(it[3] - it[2]), -it[1])),
        "largest area first": sorted(items, key=lambda it: (-it[1] * (it[3] - it[2] + 1), it[2])),
        "in order of creation": sorted(items, key=lambda it: (it[2], -it[1])),
    }
    best = None
    for name, order in orders.items():
        size, where = first_fit(order)
        if best is None or size < best[0]:
            best = (size, where, name)
    size, where, name = best
    offsets = {t: where[group[t]] for t in bufs}
    return MemoryPlan(offsets, size, in_place, name, group)


def check_plan(program: Program, arena: MemoryPlan) -> None:
    """No two live buffers overlap, except an in-place chain on its one set of bytes."""
    bufs = list(program.buffers.values())
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if a.last < b.first or b.last < a.first or arena.group[a.tensor] == arena.group[b.tensor]:
                continue
            oa, ob = arena.offsets[a.tensor], arena.offsets[b.tensor]
            if oa < ob + b.nbytes and ob < oa + a.nbytes:
                raise AotError(f"internal: the arena plan overlaps tensors {a.tensor} and {b.tensor}")
