"""The search (`tinygen shrink --auto`, `build --shrink auto`): widths and pruned filters,
PTQ and QAT, and where an int8 candidate does not fit, its weights clustered post-training to
2-7 index bits per tensor or per channel (Deep Compression's weight sharing, stored as TFLM
compressed tensors or the AOT runtime's packed weights); every candidate measured, the most
accurate that fits is chosen."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..boards import Board
from ..errors import FitError, TinygenError
from ..files import check_out_dir, write_tree
from ..fit import check_fit
from ..model.data import Dataset
from ..model.evaluate import top1
from ..model.graph import parse
from ..tflm.interpreter import int8_predict
from .cluster import INDEX_BITS, cluster_bits, granularities, prune_int8
from .distill import distill
from .recipe import Candidate, evaluate, fit_as_built, keras_bytes, qat, top1_score
from .width import prune_filters, scale_width

# shares of each weight zeroed post-training, least first: the AOT runtime stores a FULLY_CONNECTED
# or pointwise layer without its zeros once at least half (a pointwise one: three quarters) are zero
WEIGHT_SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9)


SEARCH_FILES = ("model.keras", "model.tflite", "model.compressed.tflite", "search.json", "search.png")


@dataclass
class SearchResult:
    board: Board
    candidates: list[Candidate]
    chosen: Candidate | None
    skipped: list[float]
    pareto: list[int]
    # candidate index -> (the float student's .keras bytes, its int8 .tflite, TFLM compressed tensors or None)
    models: dict[int, tuple[object, bytes, bytes | None]] = field(default_factory=dict, repr=False)
    chosen_index: int | None = None
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)
    runtime: str = "tflm"
    unreachable: bool = False    # the accuracy floor is above the original model's own accuracy: stopped there

    def to_json(self) -> dict:
        return {"board": self.board.id, "runtime": self.runtime,
                "chosen": asdict(self.chosen) if self.chosen else None,
                "candidates": [dict(asdict(c), pareto=i in self.pareto) for i, c in enumerate(self.candidates)],
                "skipped_widths": self.skipped}


def pareto_front(cands: list[Candidate]) -> list[int]:
    """Candidates no other beats on int8 accuracy, flash and SRAM at once."""
    front = []
    for i, c in enumerate(cands):
        dominated = any(
            o.accuracy_int8 >= c.accuracy_int8 and o.flash_bytes <= c.flash_bytes and o.sram_bytes <= c.sram_bytes
            and (o.accuracy_int8 > c.accuracy_int8 or o.flash_bytes < c.flash_bytes or o.sram_bytes < c.sram_bytes)
            for j, o in enumerate(cands) if j != i)
        if not dominated:
            front.append(i)
    return front


def _cache_key(teacher_hash: str, data_hash: str, width: float, quantization: str, epochs: int) -> str:
    import hashlib

    return hashlib.sha256(f"{teacher_hash}|{data_hash}|{width}|{quantization}|{epochs}".encode()).hexdigest()[:20]


def _cache_save(path: Path, cand: Candidate, tflite: bytes, student_bytes: bytes) -> None:
    """One trained candidate for a later run to resume from: the .tflite and .keras bytes as uint8
    arrays in <key>.npz, then the Candidate's fields and that file's sha256 in <key>.json, each
    written to a temporary and renamed, so a run killed between the two leaves no pair that loads."""
    import hashlib
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, tflite=np.frombuffer(tflite, np.uint8), keras=np.frombuffer(student_bytes, np.uint8))
    arrays = buf.getvalue()
    for final, data in ((path.with_suffix(".npz"), arrays),
                        (path, json.dumps({"candidate": asdict(cand),
                                           "npz_sha256": hashlib.sha256(arrays).hexdigest()}).encode())):
        tmp = final.with_name(f"{final.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(final)


def _cache_load(path: Path) -> tuple[Candidate, bytes, bytes] | None:
    """What _cache_save wrote, or None (absent, from another version, half-written or damaged:
    trained again). JSON and arrays read with allow_pickle=False, never a pickle: loading a
    pickle runs whatever code a file planted in the cache folder carries."""
    import hashlib
    import io
    import zipfile

    try:
        meta = json.loads(path.read_text())
        arrays = path.with_suffix(".npz").read_bytes()
        if not isinstance(meta, dict) or meta.get("npz_sha256") != hashlib.sha256(arrays).hexdigest():
            return None
        cand = Candidate(**meta["candidate"])
        with np.load(io.BytesIO(arrays), allow_pickle=False) as z:
            tflite, keras = z["tflite"], z["keras"]
            if tflite.dtype != np.uint8 or keras.dtype != np.uint8 or tflite.ndim != 1 or keras.ndim != 1:
                return None
            return cand, tflite.tobytes(), keras.tobytes()
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, UnicodeDecodeError, RecursionError):
        return None


def search(board: Board, teacher, teacher_hash: str, train: Dataset, val: Dataset,
           widths=(1.0, 0.75, 0.5, 0.35, 0.25), sparsities=(0.0, 0.3), max_drop: float | None = None,
           floor: float | None = None,
           epochs: int = 10, qat_epochs: int = 3, qat_when_drop: float = 0.005, cache_dir: Path | None = None,
           progress: Callable[[str, int | None, int | None], None] = lambda *a: None,
           runtime: str = "tflm", bits: tuple[int, ...] = INDEX_BITS,
           weight_sparsities: tuple[float, ...] = WEIGHT_SPARSITIES) -> SearchResult:
    """Candidates from largest to smallest: each width, then that width with a share of its filters
    structurally pruned; PTQ each, and QAT too when PTQ loses more than `qat_when_drop` of the float
    accuracy; an int8 candidate that does not fit, clustered to each of `bits` (clustered_candidates)
    and, for the AOT runtime, its weights pruned to each of `weight_sparsities` (pruned_candidates).
    Once a candidate fits and meets the accuracy floor, smaller ones cannot be more accurate (the
    assumption this search makes), so they are skipped. Flash and SRAM are the fit check's for
    `runtime`."""
    import hashlib

    if val is None or len(val) == 0:
        raise TinygenError("A search needs held-out data to measure accuracy on: pass --val.")
    teacher_top1 = top1(teacher.predict(val.x, batch_size=256, verbose=0))
    data_hash = hashlib.sha256(np.ascontiguousarray(train.x).tobytes()[:1 << 20] + np.ascontiguousarray(val.x).tobytes()[:1 << 20]).hexdigest()
    cands: list[Candidate] = []
    models: dict[int, tuple[object, bytes, bytes | None]] = {}
    skipped: list[float] = []
    baseline = None
    recipes = [(w, sp) for w in sorted(set(widths), reverse=True) for sp in sorted(set(sparsities))]
    unreachable = False
    for n, (w, sp) in enumerate(recipes):
        if any(c.fits and (limit is None or c.accuracy_int8 >= limit) for c in cands
               for limit in [None if baseline is None else _floor(baseline, max_drop, floor)]):
            skipped += [r[0] if r[1] == 0 else r for r in recipes[n:]]
            break
        # a floor the original model itself does not reach, float or int8: thinner students of it
        # would not either (the search's assumption), so none is trained
        if floor is not None and baseline is not None and max(baseline.accuracy_float, baseline.accuracy_int8) < floor:
            skipped += [r[0] if r[1] == 0 else r for r in recipes[n:]]
            unreachable = True
            break
        progress("Searching", n, len(recipes))
        tried = []
        for quant in ("ptq", "qat"):
            key = _cache_key(teacher_hash, data_hash, w, f"{quant}-s{sp}", epochs)
            cached = cache_dir / f"{key}.json" if cache_dir else None
            hit = _cache_load(cached) if cached else None
            if hit is not None:
                cand, tflite, student_bytes = hit
                # the cache holds what training made; the fit depends on the board: measure it again
                report = fit_as_built(tflite, board, runtime)
                cand.flash_bytes, cand.sram_bytes, cand.fits = (report.flash.total_bytes, report.sram.total_bytes,
                                                                report.fits)
            else:
                if quant == "qat" and (not tried or tried[0].accuracy_float - tried[0].accuracy_int8 <= qat_when_drop):
                    break   # PTQ kept the float accuracy: QAT has nothing to recover
                started = time.monotonic()
                if w == 1.0 and sp == 0 and quant == "ptq":
                    student = teacher
                else:
                    student = scale_width(teacher, w) if w < 1.0 else teacher
                    student = prune_filters(student, sp) if sp else scale_width(student, 1.0)
                    distill(teacher, student, train.x, train.y, epochs=epochs)
                net = qat(teacher, student, train, qat_epochs) if quant == "qat" else student
                cand, tflite = evaluate(net, board, val, teacher_top1, train, w, time.monotonic() - started, quant,
                                        float_model=student, runtime=runtime)
                cand.sparsity = sp
                student_bytes = keras_bytes(student)
                if cached:
                    _cache_save(cached, cand, tflite, student_bytes)
            tried.append(cand)
            models[len(cands)] = (student_bytes, tflite, None)
            cands.append(cand)
            if baseline is None:
                baseline = cand
            # clustering stores weights in fewer bytes of flash; it frees no SRAM (TFLM's DECODE even
            # adds the decoded weights to the arena), so a candidate over on SRAM is not clustered
            if not cand.fits and cand.sram_bytes <= board.sram_size:
                if bits:
                    progress(f"Clustering width {w:g} {quant} post-training", n, len(recipes))
                    for c, clustered, compressed in clustered_candidates(cand, tflite, board, val, teacher_top1,
                                                                         runtime, _floor(baseline, max_drop, floor), bits):
                        models[len(cands)] = (student_bytes, clustered, compressed)
                        cands.append(c)
                if runtime == "aot" and weight_sparsities:
                    progress(f"Pruning width {w:g} {quant}'s weights post-training", n, len(recipes))
                    for c, pruned in pruned_candidates(cand, tflite, board, val, teacher_top1,
                                                       _floor(baseline, max_drop, floor), weight_sparsities):
                        models[len(cands)] = (student_bytes, pruned, None)
                        cands.append(c)
    limit = _floor(baseline, max_drop, floor)
    ok = [i for i, c in enumerate(cands) if c.fits and (limit is None or c.accuracy_int8 >= limit)]
    chosen = max(ok, key=lambda i: (cands[i].accuracy_int8, -cands[i].flash_bytes)) if ok else None
    result = SearchResult(board, cands, cands[chosen] if chosen is not None else None, skipped, pareto_front(cands), models)
    result.chosen_index, result.runtime, result.unreachable = chosen, runtime, unreachable
    return result


def clustered_candidates(base: Candidate, tflite: bytes, board: Board, val: Dataset, teacher_top1: np.ndarray,
                         runtime: str, limit: float | None, bits: tuple[int, ...] = INDEX_BITS
                         ) -> list[tuple[Candidate, bytes, bytes | None]]:
    """`base`'s int8 model clustered post-training (k-means on its int8 weights, no training), per
    channel and per tensor, from the most index bits down: (candidate, clustered int8 model, TFLM
    compressed model or None). Per granularity it stops at the first that fits, or that falls below
    `limit`: fewer bits would not be more accurate. Flash is the fit check's for the model as
    `runtime` stores it (Clustered.stored); accuracy is the clustered int8 model's on `val` (TFLM's
    compressed tensors decode to exactly its weights)."""
    g = parse(tflite)
    found = []
    for per_channel in granularities(g):
        for b in sorted(set(bits), reverse=True):
            started = time.monotonic()
            cl = cluster_bits(tflite, g, b, per_channel)
            stored = cl.stored(runtime)
            if stored is None:        # no weight smaller as a look-up table at this many bits
                continue
            report = check_fit(parse(stored, "the clustered model"), board, runtime=runtime,
                               model_bytes=stored if runtime == "aot" else None, lut_bits=b)
            out = int8_predict(cl.model, cl.graph, val.x)
            cand = Candidate(base.width, base.sparsity, base.quantization, base.accuracy_float,
                             top1_score(out, val.y, teacher_top1), report.flash.total_bytes, report.sram.total_bytes,
                             base.macs, base.params, report.fits, round(time.monotonic() - started, 2),
                             base.accuracy_kind, "lut", b, cl.granularity)
            found.append((cand, cl.model, cl.compressed.model if cl.compressed is not None else None))
            if cand.fits or (limit is not None and cand.accuracy_int8 < limit):
                break
    return found


def pruned_candidates(base: Candidate, tflite: bytes, board: Board, val: Dataset, teacher_top1: np.ndarray,
                      limit: float | None, sparsities: tuple[float, ...] = WEIGHT_SPARSITIES
                      ) -> list[tuple[Candidate, bytes]]:
    """`base`'s int8 model with the smallest weights zeroed post-training (no training), for the
    AOT runtime's sparse forms: (candidate, pruned int8 model), least pruned first, stopping at the
    first that fits or falls below `limit` (more pruning would not be more accurate). A share that
    makes no layer smaller is not measured."""
    g = parse(tflite)
    dense = base.flash_bytes
    found = []
    for s in sorted(set(sparsities)):
        started = time.monotonic()
        pruned = prune_int8(tflite, g, s)
        pg = parse(pruned, "the pruned model")
        report = check_fit(pg, board, runtime="aot", model_bytes=pruned)
        if report.flash.total_bytes >= dense:
            continue     # no layer stored sparse at this share
        out = int8_predict(pruned, pg, val.x)
        cand = Candidate(base.width, base.sparsity, base.quantization, base.accuracy_float,
                         top1_score(out, val.y, teacher_top1), report.flash.total_bytes, report.sram.total_bytes,
                         base.macs, base.params, report.fits, round(time.monotonic() - started, 2),
                         base.accuracy_kind, "sparse", weight_sparsity=s)
        found.append((cand, pruned))
        if cand.fits or (limit is not None and cand.accuracy_int8 < limit):
            break
    return found


def describe(c: Candidate) -> str:
    """A candidate in words: width, pruning, quantization and clustering."""
    words = f"width {c.width:g}" + (f" with {c.sparsity:.0%} of filters pruned" if c.sparsity else "") + f" {c.quantization}"
    if c.cluster_bits:
        words += f" clustered to {c.cluster_bits} bits per {c.cluster_granularity}"
    if c.weight_sparsity:
        words += f" with {c.weight_sparsity:.0%} of its weights zeroed (stored sparse)"
    return words


def _floor(baseline: Candidate, max_drop: float | None, floor: float | None) -> float | None:
    if floor is not None:
        return floor
    if max_drop is not None and baseline is not None:
        return baseline.accuracy_int8 - max_drop / 100.0
    return None


def search_png(result: SearchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for ax, key, budget, label in ((axes[0], "flash_bytes", result.board.app_flash_bytes, "flash"),
                                   (axes[1], "sram_bytes", result.board.sram_size, "SRAM")):
        for i, c in enumerate(result.candidates):
            x = getattr(c, key) / 1024
            marker = "^" if c.cluster_bits else ("v" if c.weight_sparsity else ("o" if c.quantization == "ptq" else "s"))
            color = "#c44e52" if c is result.chosen else ("#4c72b0" if i in result.pareto else "#999999")
            ax.scatter(x, c.accuracy_int8 * 100, marker=marker, color=color, s=50, zorder=3)
            tag = (f"{c.width:g} {c.quantization}" + (f" {c.cluster_bits}b/{c.cluster_granularity[0]}" if c.cluster_bits else "")
                   + (f" {c.weight_sparsity:.0%} zeros" if c.weight_sparsity else ""))
            ax.annotate(tag, (x, c.accuracy_int8 * 100), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        ax.axvline(budget / 1024, color="#c44e52", ls="--", lw=0.8, label=f"{result.board.id} {label}")
        ax.set_xlabel(f"{label} (KiB)")
        ax.set_ylabel("int8 accuracy (%)")
        ax.legend(fontsize=7)
    fig.suptitle("Candidates: blue on the Pareto front, red chosen; circles PTQ, squares QAT, triangles clustered", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def run_search(board: Board, teacher, model_path: Path, train: Dataset, val: Dataset, max_drop: float | None,
               floor: float | None, epochs: int, out_dir: Path,
               progress: Callable[[str, int | None, int | None], None] = lambda *a: None,
               force: bool = False, runtime: str = "tflm", **options) -> SearchResult:
    """search(), cached in .<out_dir>.cache beside out_dir so an interrupted search resumes, then
    the chosen model, search.json and search.png written to out_dir (files.write_tree; `force`
    writes them beside a user's own). `options` go to search() (widths, sparsities, bits...)."""
    import hashlib

    check_out_dir(out_dir, force, SEARCH_FILES)   # refuse before the search, not after
    teacher_hash = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    resolved = Path(out_dir).resolve()   # `--out .` has no name of its own
    cache = resolved.parent / f".{resolved.name or 'out'}.cache"
    result = search(board, teacher, teacher_hash, train, val, max_drop=max_drop, floor=floor, epochs=epochs,
                    cache_dir=cache, progress=progress, runtime=runtime, **options)
    if result.chosen is None:
        fitting = [c for c in result.candidates if c.fits]
        limit = _floor(result.candidates[0], max_drop, floor)
        if result.unreachable:
            b = result.candidates[0]
            raise TinygenError(f"The original model reaches {b.accuracy_float:.2%} on the validation data "
                               f"({b.accuracy_int8:.2%} in int8), below the accuracy floor of {limit:.2%}: no thinner "
                               "model distilled from it would meet it; lower --accuracy-floor.")
        if not fitting:
            smallest = min(result.candidates, key=lambda c: c.flash_bytes)
            raise FitError(f"No candidate fits {board.id}: the smallest tried ({describe(smallest)}) needs "
                               f"{smallest.flash_bytes:,} B of flash and {smallest.sram_bytes:,} B of SRAM.")
        best = max(fitting, key=lambda c: c.accuracy_int8)
        raise TinygenError(f"No candidate that fits meets the accuracy floor of {limit:.2%}: the best, "
                           f"{describe(best)}, reached {best.accuracy_int8:.2%}, "
                           f"{(limit - best.accuracy_int8) * 100:.2f} points short.")
    chosen_bytes, tflite, compressed = result.models[result.chosen_index]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "search.png"
        search_png(result, png)
        files = {"model.keras": chosen_bytes, "model.tflite": tflite, "search.png": png.read_bytes()}
        if compressed is not None and runtime == "tflm":
            files["model.compressed.tflite"] = compressed
    result.out_dir = Path(out_dir)
    result.files = sorted(list(files) + ["search.json"])
    files["search.json"] = json.dumps(result.to_json(), indent=2) + "\n"
    write_tree(Path(out_dir), files, force=force)
    return result
