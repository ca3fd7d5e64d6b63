"""The AOT arena: one static buffer, every activation at an offset planned on the host from
its lifetime. Where it is legal and makes the peak smaller, an op writes over an input that
dies there, in one of three forms:

- element-wise (ADD, SOFTMAX, ...): output element i depends only on input element i, so the
  output takes the input's bytes exactly;
- streamed (CONV_2D, DEPTHWISE_CONV_2D): the kernels walk the output in raster order, a pixel
  (or a pair of pixels) at a time, and never read input bytes below the lowest byte a later
  pixel's window still needs. Placed that far before its input, the output's writes only ever
  land on input bytes no later pixel reads: a depthwise or k x k convolution overwrites the
  input rows behind its window (the ring of rows lives in the arena), a 1x1 convolution the
  pixels it has done. Backwards (tg_*_backwards, last pixel first) the output starts above its
  input instead: a widening 1x1 grows over it, and a chain of streamed ops can alternate
  directions rather than drift one way. No stack buffer;
- fused with the ADD that follows (a residual): the convolution computes a row of pixels into
  a stack buffer and adds it to the skip tensor, writing the sum over the skip's bytes, so the
  convolution's own output is never in the arena.

The planner models each form exactly (which bytes are written when, and which must stay
unread), tries each legal choice per op, and keeps the smallest arena; `check_plan` proves
every overlap safe from the final offsets alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .lower import AotError, Program, Step
from .size import PARAM_BYTES

ALIGN = 4   # int8 buffers need none; float ones (QUANTIZE in, DEQUANTIZE out) need 4
# tg_conv2d_add's stack buffers (firmware/aot/tg_conv.c): a run of output pixels of the
# convolution (TG_CONV_ADD_BYTES), added to the skip tensor before the next run, and the ADD's
# two tables of rescaled inputs (256 int32 each), held while the convolution runs under them.
CONV_ADD_BYTES = 512
CONV_ADD_STACK_BYTES = CONV_ADD_BYTES + 2 * 256 * 4
STREAMED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# the first-fit orders the search over forms compares plans by (the final plan tries them all)
SEARCH_ORDERS = ("largest first",)


@dataclass(frozen=True)
class InPlace:
    """Step `step` writes `dst` over `src`'s bytes, `shift` bytes from src's start."""
    step: int
    form: str          # "element-wise", "streamed" or "conv+add"
    src: int
    dst: int
    shift: int
    stack_bytes: int = 0
    fused: int | None = None   # conv+add: the ADD step the convolution runs with; ring: the second convolution
    also: tuple[int, ...] = ()  # ring+add: the ADD after the second convolution, run inside it too
    kinds: tuple[int, ...] = () # ring: the kernels the two convolutions run as (TG_RING_* in tg_kernels.h)


@dataclass
class MemoryPlan:
    offsets: dict[int, int]      # tensor -> byte offset in the arena
    size: int                    # bytes
    in_place: list[int]          # step indices whose output shares its input's bytes
    heuristic: str
    group: dict[int, int]        # tensor -> the tensor whose bytes it shares (itself if none)
    forms: dict[int, InPlace] = field(default_factory=dict)   # step index -> how it runs in place
    stack_bytes: int = 0         # the largest stack buffer an in-place form adds

    @property
    def fused_steps(self) -> set[int]:
        """ADD steps that run inside the convolution before them (no call of their own)."""
        return {j for f in self.forms.values() for j in _inside(f)}

    @property
    def runs_in(self) -> dict[int, int]:
        """Step -> the step whose kernel call runs it (a ring's second convolution, a fused ADD)."""
        return {j: f.step for f in self.forms.values() for j in _inside(f)}


def _inside(f: InPlace) -> tuple[int, ...]:
    """The steps that run inside f's step (no call of their own)."""
    return (f.fused, *f.also) if f.fused is not None else ()


def _gone(program: Program, forms) -> set[int]:
    """Tensors a fused form never stores in the arena: the output of each step that runs
    into another (the convolution before its ADD, the first convolution of a ring, ...)."""
    steps = program.steps
    return {steps[j].output for f in forms for j in (f.step, *_inside(f))[:-1]}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# --- the streamed form: what a convolution reads and writes, pixel by pixel ------------------

def _taps(out: int, in_: int, k: int, stride: int, dilation: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output row (or column): the first and last input row its window reads inside the
    image (-1 for both where none is inside)."""
    start = np.arange(out) * stride - pad
    skip = np.where(start < 0, (-start + dilation - 1) // dilation, 0)
    first = start + skip * dilation
    last_tap = np.minimum(k - 1, np.floor_divide(in_ - 1 - start, dilation))
    last = start + last_tap * dilation
    inside = (skip <= last_tap) & (first < in_) & (last >= 0)
    return np.where(inside, first, -1), np.where(inside, last, -1)


@lru_cache(maxsize=256)
def _stream_geometry(key: tuple, backwards: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per output pixel i, in the order the kernel writes them: the input bytes [lo, hi) that
    pixel i and every pixel after it still read, and the output bytes [w_lo, w_hi) written
    while pixel i's window is read (its own and, where the kernel does two pixels at once,
    the next one's). Byte positions are relative to each tensor's start."""
    (in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, s_h, s_w, d_h, d_w, p_h, p_w) = key
    y_first, y_last = _taps(out_h, in_h, k_h, s_h, d_h, p_h)
    x_first, x_last = _taps(out_w, in_w, k_w, s_w, d_w, p_w)
    in_size, n = in_h * in_w * in_c, out_h * out_w
    reads = (y_first[:, None] >= 0) & (x_first[None, :] >= 0)
    lowest = np.where(reads, (y_first[:, None] * in_w + x_first[None, :]) * in_c, in_size).reshape(-1)
    highest = np.where(reads, (y_last[:, None] * in_w + x_last[None, :] + 1) * in_c, 0).reshape(-1)
    pixel = np.arange(n)
    if backwards:   # pixel n-1 first; pairs are (i-1, i)
        lo = np.minimum.accumulate(lowest)
        hi = np.maximum.accumulate(highest)
        w_lo, w_hi = np.maximum(pixel - 1, 0) * out_c, (pixel + 1) * out_c
    else:           # pixel 0 first; pairs are (i, i+1)
        lo = np.minimum.accumulate(lowest[::-1])[::-1]
        hi = np.maximum.accumulate(highest[::-1])[::-1]
        w_lo, w_hi = pixel * out_c, np.minimum(pixel + 2, n) * out_c
    return np.stack([lo, hi]), np.stack([w_lo, w_hi]), in_size, out_c


def _geometry(s: Step, backwards: bool):
    p = s.params
    return _stream_geometry((p["in_h"], p["in_w"], p["in_c"], p["out_h"], p["out_w"], p["out_c"], p["k_h"], p["k_w"],
                             p["stride_h"], p["stride_w"], p["dilation_h"], p["dilation_w"], p["pad_h"], p["pad_w"]),
                            backwards)


def stream_shift(s: Step, backwards: bool = False) -> int:
    """Where a streamed convolution's output may start, relative to its input's start, with
    the two overlapping: forwards, the highest start at which every pixel's writes end below
    the input bytes still to be read; backwards, the lowest at which they begin above them."""
    (lo, hi), (w_lo, w_hi), _, _ = _geometry(s, backwards)
    return int((hi - w_lo).max()) if backwards else int((lo - w_hi).min())


def stream_safe(s: Step, in_off: int, out_off: int, backwards: bool = False) -> bool:
    """True if a streamed convolution with its input at in_off and its output at out_off never
    writes a byte it reads later: each pixel's writes miss the input bytes still to be read."""
    (lo, hi), (w_lo, w_hi), _, _ = _geometry(s, backwards)
    return bool(np.all((out_off + w_hi <= in_off + lo) | (out_off + w_lo >= in_off + hi)))


# --- the ring form: two convolutions, the first's output a window of rows on the stack -------

# the kernels tg_conv_ring can call for either convolution (tg_kernels.h's TG_RING_*)
RING_KINDS = {"tg_conv2d": 0, "tg_conv2d_1x1": 1, "tg_depthwise_conv2d": 2}


def ring_rows(b: Step) -> int:
    """Rows of the first convolution's output tg_conv_ring holds: the second's window height."""
    return (b.params["k_h"] - 1) * b.params["dilation_h"] + 1


def _ring_reads(a: Step, b: Step) -> np.ndarray | None:
    """Per output row y of B, in order: the lowest byte of A's input that A still reads after B's
    row y is written (A's input size where none), or None where some row of B reads no row of A."""
    pa, pb = a.params, b.params
    top = np.arange(pb["out_h"]) * pb["stride_h"] - pb["pad_h"]
    lo = np.maximum(top, 0)
    hi = np.minimum(top + ring_rows(b), pa["out_h"])       # A's rows made by the time row y is written
    if np.any(hi <= lo):
        return None
    # A's next band starts at the first row B needs that is not made yet (tg_ring.c skips the rest)
    nxt = np.maximum(hi, np.append(lo[1:], pa["out_h"]))
    first = np.maximum(nxt * pa["stride_h"] - pa["pad_h"], 0)   # the first input row that band reads
    row_in = pa["in_w"] * pa["in_c"]
    later = np.append(hi[1:] > hi[:-1], False)               # a band follows row y
    return np.where(later, np.minimum(first, pa["in_h"]) * row_in, pa["in_h"] * row_in)


def ring_shift(a: Step, b: Step) -> int:
    """How far B's output may start past A's input, overlapping it: the highest start at which
    each row written ends at or below the bytes of A's input still to be read."""
    lo = _ring_reads(a, b)
    row_out = b.params["out_w"] * b.params["out_c"]
    return int((lo - (np.arange(len(lo)) + 1) * row_out).min())


def ring_safe(a: Step, b: Step, in_off: int, out_off: int) -> bool:
    return ring_shift(a, b) >= out_off - in_off


# tg_ring.c's frames beyond the dense kernels': the two parameter blocks it copies (a band's, B's
# row's) and its locals (QEMU, VWW's ring: stack_used grew by the window + 240 bytes)
RING_FRAME_BYTES = 2 * PARAM_BYTES["tg_conv_params"] + 32


def _ring_stack(a: Step, b: Step, add: bool) -> int:
    window = ring_rows(b) * a.params["out_w"] * a.params["out_c"]
    # tg_conv_ring_add: B's row before the ADD, and the ADD's two tables of rescaled inputs
    return window + RING_FRAME_BYTES + (b.params["out_w"] * b.params["out_c"] + 2 * 256 * 4 if add else 0)


def _ring_options(program: Program, i: int, dies_here, out_of_reach) -> list[InPlace]:
    """Step i and the convolution after it as a ring (its output apart, over step i's input, or
    fused with the ADD after it into the skip tensor)."""
    bufs, steps = program.buffers, program.steps
    if i + 1 >= len(steps):
        return []
    a, b = steps[i], steps[i + 1]
    if (b.op not in STREAMED_OPS or a.kernel not in RING_KINDS or b.kernel not in RING_KINDS
            or b.inputs[0] != a.output or bufs[a.output].last != i + 1 or a.output in out_of_reach
            or ring_rows(b) > a.params["out_h"] or _ring_reads(a, b) is None):
        return []
    x, kinds = a.inputs[0], (RING_KINDS[a.kernel], RING_KINDS[b.kernel])
    opts = [InPlace(i, "ring", None, b.output, 0, _ring_stack(a, b, False), fused=i + 1, kinds=kinds)]
    if dies_here(x, i) and b.output not in out_of_reach:
        opts.append(InPlace(i, "ring streamed", x, b.output, ring_shift(a, b) // ALIGN * ALIGN,
                            _ring_stack(a, b, False), fused=i + 1, kinds=kinds))
    if i + 2 < len(steps):
        add, y = steps[i + 2], b.output
        if (add.op == "ADD" and add.kernel and not add.const_operands and add.params["broadcast"] == 0
                and len(add.inputs) == 2 and add.inputs.count(y) == 1 and bufs[y].last == i + 2
                and y not in out_of_reach):
            skip = add.inputs[1 - add.inputs.index(y)]
            if (dies_here(skip, i + 2) and bufs[skip].first < i and skip != a.output
                    and bufs[skip].nbytes == bufs[add.output].nbytes == bufs[y].nbytes
                    and (skip != x or ring_shift(a, b) >= 0)):
                opts.append(InPlace(i, "ring+add", skip, add.output, 0, _ring_stack(a, b, True), fused=i + 1,
                                    also=(i + 2,), kinds=kinds))
    return opts


# --- which forms are legal where --------------------------------------------------------

def _options(program: Program) -> dict[int, list[InPlace]]:
    """Per step, the in-place forms it may take."""
    bufs, steps = program.buffers, program.steps
    out_of_reach = set(program.outputs)       # a model output is read after the last step

    def dies_here(t: int, i: int) -> bool:
        return bufs[t].last == i and t not in out_of_reach

    options: dict[int, list[InPlace]] = {}
    for i, s in enumerate(steps):
        if s.kernel is None or s.output in program.inputs:
            continue
        if s.kernel.startswith("tg_lut_"):
            continue     # the LUT kernels (aot/lut.py) run no in-place form
        if s.kernel.startswith("tg_sparse_"):
            continue     # nor the sparse ones (aot/sparse.py): a channel over every pixel at a time
        opts = []
        if s.in_place_ok:
            for k, t in enumerate(s.inputs):
                # element i of the output depends on element i of each input only, so the output
                # may take the bytes of any input of its size that dies here
                if (dies_here(t, i) and bufs[t].nbytes == bufs[s.output].nbytes
                        and s.inputs.count(t) == 1 and (k == 0 or s.op in ("ADD", "SUB", "MUL"))):
                    opts.append(InPlace(i, "element-wise", t, s.output, 0))
        if s.op in STREAMED_OPS and dies_here(s.inputs[0], i):
            # shifts in whole words, so that the kernels' word loads stay aligned
            opts.append(InPlace(i, "streamed", s.inputs[0], s.output, stream_shift(s) // ALIGN * ALIGN))
            opts.append(InPlace(i, "streamed backwards", s.inputs[0], s.output, -(-stream_shift(s, True) // ALIGN) * ALIGN))
        if s.op == "CONV_2D" and i + 1 < len(steps):
            a = steps[i + 1]
            y = s.output
            if (a.op == "ADD" and a.kernel and not a.const_operands and a.params["broadcast"] == 0
                    and len(a.inputs) == 2 and a.inputs.count(y) == 1 and bufs[y].last == i + 1
                    and y not in out_of_reach and s.params["out_c"] * 2 <= CONV_ADD_BYTES):
                skip = a.inputs[1 - a.inputs.index(y)]
                if (skip != s.inputs[0] and dies_here(skip, i + 1) and bufs[skip].first < i
                        and bufs[skip].nbytes == bufs[a.output].nbytes == bufs[y].nbytes):
                    opts.append(InPlace(i, "conv+add", skip, a.output, 0, CONV_ADD_STACK_BYTES, fused=i + 1))
        if s.op in STREAMED_OPS:
            opts += _ring_options(program, i, dies_here, out_of_reach)
        if opts:
            options[i] = opts
    return options


def _place(program: Program, chosen: dict[int, InPlace], orders_tried: tuple[str, ...] | None = None):
    """First fit of every group of tensors sharing bytes, for a few orders: (size, offsets,
    order name, group)."""
    bufs = program.buffers
    gone = _gone(program, chosen.values())
    life = {t: [b.first, b.last] for t, b in bufs.items() if t not in gone}
    for f in chosen.values():
        if f.fused is not None:
            life[f.dst][0] = f.step      # the sum is written during the convolution
    parent = {f.dst: (f.src, f.shift) for f in chosen.values() if f.src is not None}

    def root(t: int) -> tuple[int, int]:
        rel = 0
        while t in parent:
            t, shift = parent[t]
            rel += shift
        return t, rel

    members: dict[int, list[tuple[int, int]]] = {}   # root -> [(tensor, offset relative to the root)]
    for t in life:
        r, rel = root(t)
        members.setdefault(r, []).append((t, rel))
    groups = []
    for r, ms in members.items():
        low = min(rel for _, rel in ms)
        ms = [(t, rel - low, _align(bufs[t].nbytes), life[t][0], life[t][1]) for t, rel in ms]
        span = max(rel + size for _, rel, size, _, _ in ms)
        first, last = min(m[3] for m in ms), max(m[4] for m in ms)
        area = sum(size * (l - f + 1) for _, _, size, f, l in ms)
        groups.append((r, ms, span, first, last, area))

    def first_fit(order):
        placed: list[tuple[int, int, int, int]] = []   # lo, hi, first, last
        where = {}
        for r, ms, *_ in order:
            clashes = [[(lo - rel, hi - rel) for lo, hi, f, l in placed if not (ml < f or l < mf)]
                       for _, rel, size, mf, ml in ms]
            candidates = sorted({0} | {_align(hi) for per in clashes for _, hi in per if hi > 0})
            for at in candidates:
                ok = all(not (at < hi and lo < at + size) for (_, _, size, _, _), per in zip(ms, clashes)
                         for lo, hi in per)
                if ok:
                    break
            for _, rel, size, mf, ml in ms:
                placed.append((at + rel, at + rel + size, mf, ml))
            where[r] = at
        return max((hi for _, hi, _, _ in placed), default=0), where

    orders = {
        "largest first": sorted(groups, key=lambda g: (-g[2], g[3])),
        "longest-lived first": sorted(groups, key=lambda g: (-(g[4] - g[3]), -g[2])),
        "largest area first": sorted(groups, key=lambda g: (-g[5], g[3])),
        "in order of creation": sorted(groups, key=lambda g: (g[3], -g[2])),
    }
    best = None
    for name, order in orders.items():
        if orders_tried and name not in orders_tried:
            continue
        size, where = first_fit(order)
        if best is None or size < best[0]:
            best = (size, where, name)
    size, where, name = best
    offsets, group = {}, {}
    for r, ms, *_ in groups:
        for t, rel, *_ in ms:
            offsets[t] = where[r] + rel
            group[t] = r
    return size, offsets, name, group


def plan(program: Program, in_place: bool = True) -> MemoryPlan:
    """Offsets for every activation: the smallest of a few first-fit orders, over the choice
    of in-place form per op (coordinate descent, from three starts), ties broken by the smaller
    stack buffer. in_place=False: every tensor its own bytes (the live-set bound)."""
    options = _options(program) if in_place else {}

    seen: dict[frozenset, tuple[int, int]] = {}

    def cost(chosen):
        key = frozenset(chosen.items())
        if key not in seen:
            stack = max((f.stack_bytes for f in chosen.values()), default=0)
            # SRAM is the arena plus the largest kernel stack buffer: a form pays for its buffer
            seen[key] = _place(program, chosen, SEARCH_ORDERS)[0] + stack, stack
        return seen[key]

    def descend(chosen):
        best = cost(chosen)
        for _ in range(4):
            improved = False
            for i, opts in options.items():
                for f in [None, *opts]:
                    trial = {j: g for j, g in chosen.items() if i not in _inside(g)}
                    if f is None:
                        trial.pop(i, None)
                    else:
                        trial = {j: g for j, g in trial.items()
                                 if j not in _inside(f) and not set(_inside(g)) & set(_inside(f))}
                        trial[i] = f   # the steps f fuses run inside this step now
                    if trial == chosen:
                        continue
                    c = cost(trial)
                    if c < best:
                        best, chosen, improved = c, trial, True
            if not improved:
                break
        return best, chosen

    # from a few starts (every convolution forwards, backwards, or alternating, so that a chain
    # of streamed ops need not drift one way), each op's form in turn while the arena shrinks
    starts = []
    for pick in ("streamed", "streamed backwards", "alternating"):
        start, flip = {}, False
        for i, opts in options.items():
            want = pick if pick != "alternating" else ("streamed backwards" if flip else "streamed")
            plain = [f for f in opts if f.form in (want, "element-wise")]
            if plain:
                start[i] = plain[0]
                flip = not flip if plain[0].form != "element-wise" else flip
        starts.append(start)
    chosen = min((descend(s) for s in starts), key=lambda r: r[0])[1]
    size, offsets, name, group = _place(program, chosen)
    forms = dict(sorted(chosen.items()))
    return MemoryPlan(offsets, size, sorted(forms), name, group, forms,
                      max((f.stack_bytes for f in forms.values()), default=0))


def _lifetimes(program: Program, arena: MemoryPlan) -> dict[int, tuple[int, int]]:
    """(first write, last read) per tensor in the arena, with fused ADDs folded into their convolution."""
    life = {}
    gone = _gone(program, arena.forms.values())
    for t, b in program.buffers.items():
        if t not in gone:
            life[t] = (b.first, b.last)
    for f in arena.forms.values():
        if f.fused is not None:
            life[f.dst] = (f.step, life[f.dst][1])
    return life


def check_plan(program: Program, arena: MemoryPlan) -> None:
    """No two live buffers overlap, except an output over an input that dies at its step where
    the step's form makes it safe, proven from the offsets: the same bytes for an element-wise
    op and for a convolution fused with its ADD; for a streamed convolution, every pixel's
    writes below the input bytes still to be read."""
    bufs = program.buffers
    life = _lifetimes(program, arena)
    allowed = {}
    for i, f in arena.forms.items():
        s = program.steps[i]
        if f.form in ("streamed", "streamed backwards"):
            if s.op not in STREAMED_OPS or f.src != s.inputs[0] or f.dst != s.output:
                raise AotError(f"internal: step {i} ({s.op}) cannot stream in place")
            allowed[(f.src, f.dst)] = lambda s=s, f=f: stream_safe(s, arena.offsets[f.src], arena.offsets[f.dst],
                                                                   f.form == "streamed backwards")
        elif f.form == "element-wise":
            if not s.in_place_ok or f.src not in s.inputs or f.dst != s.output:
                raise AotError(f"internal: step {i} ({s.op}) cannot run element-wise in place")
            allowed[(f.src, f.dst)] = lambda f=f: (arena.offsets[f.src] == arena.offsets[f.dst]
                                                   and bufs[f.src].nbytes == bufs[f.dst].nbytes)
        elif f.form == "conv+add":
            a = program.steps[f.fused]
            if s.op != "CONV_2D" or a.op != "ADD" or f.src not in a.inputs or f.dst != a.output:
                raise AotError(f"internal: step {i} ({s.op}) cannot run fused with the ADD after it")
            allowed[(f.src, f.dst)] = lambda f=f: (arena.offsets[f.src] == arena.offsets[f.dst]
                                                   and bufs[f.src].nbytes == bufs[f.dst].nbytes)
        elif f.form in ("ring", "ring streamed", "ring+add"):
            b = program.steps[f.fused]
            if (s.kernel not in RING_KINDS or b.op not in STREAMED_OPS or b.inputs[0] != s.output
                    or f.dst != (program.steps[f.also[0]].output if f.also else b.output)):
                raise AotError(f"internal: steps {i} and {f.fused} cannot run as a ring")
            x = s.inputs[0]

            def ring_proof(t, s=s, b=b, f=f, x=x, i=i):
                # B's rows land on A's input only past what A has read; the sum takes the skip's bytes
                ends = (f.also[-1] if t == f.src else i) if f.form == "ring+add" else i
                over_x = (t == x and bufs[x].last <= ends and x not in program.outputs
                          and ring_safe(s, b, arena.offsets[x], arena.offsets[f.dst]))
                same = (f.form == "ring+add" and t == f.src and arena.offsets[t] == arena.offsets[f.dst]
                        and bufs[t].nbytes == bufs[f.dst].nbytes)
                if f.form == "ring+add" and t == f.src == x:
                    return over_x and same
                return over_x or same
            if f.form != "ring":
                allowed[(x, f.dst)] = lambda t=x, p=ring_proof: p(t)
                if f.src is not None and f.src != x:
                    allowed[(f.src, f.dst)] = lambda t=f.src, p=ring_proof: p(t)
        else:
            raise AotError(f"internal: unknown in-place form {f.form}")
    ts = sorted(life)
    for k, a in enumerate(ts):
        for b in ts[k + 1:]:
            (fa, la), (fb, lb) = life[a], life[b]
            if la < fb or lb < fa:
                continue
            oa, ob = arena.offsets[a], arena.offsets[b]
            if not (oa < ob + bufs[b].nbytes and ob < oa + bufs[a].nbytes):
                continue
            proof = allowed.get((a, b)) or allowed.get((b, a))
            if proof is None or not proof():
                raise AotError(f"internal: the arena plan overlaps tensors {a} and {b}")
    for t in life:
        if arena.offsets[t] < 0 or arena.offsets[t] + bufs[t].nbytes > arena.size:
            raise AotError(f"internal: the arena plan puts tensor {t} outside the arena")
