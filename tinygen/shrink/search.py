"""The search (`tinygen shrink --auto`, `build --shrink auto`): widths and pruned filters,
PTQ and QAT, every candidate measured; the most accurate that fits is chosen."""

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
from ..model.data import Dataset
from ..model.evaluate import top1
from .distill import distill
from .recipe import Candidate, evaluate, fit_as_built, keras_bytes, qat
from .width import prune_filters, scale_width


SEARCH_FILES = ("model.keras", "model.tflite", "search.json", "search.png")


@dataclass
class SearchResult:
    board: Board
    candidates: list[Candidate]
    chosen: Candidate | None
    skipped: list[float]
    pareto: list[int]
    models: dict[int, tuple[object, bytes]] = field(default_factory=dict, repr=False)
    chosen_index: int | None = None
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"board": self.board.id, "chosen": asdict(self.chosen) if self.chosen else None,
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


def search(board: Board, teacher, teacher_hash: str, train: Dataset, val: Dataset,
           widths=(1.0, 0.75, 0.5, 0.35, 0.25), sparsities=(0.0, 0.3), max_drop: float | None = None,
           floor: float | None = None,
           epochs: int = 10, qat_epochs: int = 3, qat_when_drop: float = 0.005, cache_dir: Path | None = None,
           progress: Callable[[str, int | None, int | None], None] = lambda *a: None) -> SearchResult:
    """Candidates from largest to smallest: each width, then that width with a share of its filters
    structurally pruned; PTQ each, and QAT too when PTQ loses more than `qat_when_drop` of the float
    accuracy. Once a candidate fits and meets the accuracy floor, smaller ones cannot be more
    accurate (the assumption this search makes), so they are skipped."""
    import hashlib
    import pickle

    if val is None or len(val) == 0:
        raise TinygenError("A search needs held-out data to measure accuracy on: pass --val.")
    teacher_top1 = top1(teacher.predict(val.x, batch_size=256, verbose=0))
    data_hash = hashlib.sha256(np.ascontiguousarray(train.x).tobytes()[:1 << 20] + np.ascontiguousarray(val.x).tobytes()[:1 << 20]).hexdigest()
    cands: list[Candidate] = []
    models: dict[int, tuple[object, bytes]] = {}
    skipped: list[float] = []
    baseline = None
    recipes = [(w, sp) for w in sorted(set(widths), reverse=True) for sp in sorted(set(sparsities))]
    for n, (w, sp) in enumerate(recipes):
        if any(c.fits and (limit is None or c.accuracy_int8 >= limit) for c in cands
               for limit in [None if baseline is None else _floor(baseline, max_drop, floor)]):
            skipped += [r[0] if r[1] == 0 else r for r in recipes[n:]]
            break
        progress("Searching", n, len(recipes))
        tried = []
        for quant in ("ptq", "qat"):
            key = _cache_key(teacher_hash, data_hash, w, f"{quant}-s{sp}", epochs)
            cached = cache_dir / f"{key}.pkl" if cache_dir else None
            if cached and cached.exists():
                cand, tflite, student_bytes = pickle.loads(cached.read_bytes())
                # the cache holds what training made; the fit depends on the board: measure it again
                report = fit_as_built(tflite, board)
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
                                        float_model=student)
                cand.sparsity = sp
                student_bytes = keras_bytes(student)
                if cached:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cached.with_suffix(".tmp")
                    tmp.write_bytes(pickle.dumps((cand, tflite, student_bytes)))
                    tmp.replace(cached)
            tried.append(cand)
            models[len(cands)] = (student_bytes, tflite)
            cands.append(cand)
            if baseline is None:
                baseline = cand
    limit = _floor(baseline, max_drop, floor)
    ok = [i for i, c in enumerate(cands) if c.fits and (limit is None or c.accuracy_int8 >= limit)]
    chosen = max(ok, key=lambda i: (cands[i].accuracy_int8, -cands[i].flash_bytes)) if ok else None
    result = SearchResult(board, cands, cands[chosen] if chosen is not None else None, skipped, pareto_front(cands), models)
    result.chosen_index = chosen
    return result


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
            marker = "o" if c.quantization == "ptq" else "s"
            color = "#c44e52" if c is result.chosen else ("#4c72b0" if i in result.pareto else "#999999")
            ax.scatter(x, c.accuracy_int8 * 100, marker=marker, color=color, s=50, zorder=3)
            ax.annotate(f"{c.width:g} {c.quantization}", (x, c.accuracy_int8 * 100), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        ax.axvline(budget / 1024, color="#c44e52", ls="--", lw=0.8, label=f"{result.board.id} {label}")
        ax.set_xlabel(f"{label} (KiB)")
        ax.set_ylabel("int8 accuracy (%)")
        ax.legend(fontsize=7)
    fig.suptitle("Candidates: blue on the Pareto front, red chosen; circles PTQ, squares QAT", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def run_search(board: Board, teacher, model_path: Path, train: Dataset, val: Dataset, max_drop: float | None,
               floor: float | None, epochs: int, out_dir: Path,
               progress: Callable[[str, int | None, int | None], None] = lambda *a: None,
               force: bool = False) -> SearchResult:
    """search(), cached in .<out_dir>.cache beside out_dir so an interrupted search resumes, then
    the chosen model, search.json and search.png written to out_dir (files.write_tree; `force`
    writes them beside a user's own)."""
    import hashlib

    check_out_dir(out_dir, force, SEARCH_FILES)   # refuse before the search, not after
    teacher_hash = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    resolved = Path(out_dir).resolve()   # `--out .` has no name of its own
    cache = resolved.parent / f".{resolved.name or 'out'}.cache"
    result = search(board, teacher, teacher_hash, train, val, max_drop=max_drop, floor=floor, epochs=epochs,
                    cache_dir=cache, progress=progress)
    if result.chosen is None:
        fitting = [c for c in result.candidates if c.fits]
        limit = _floor(result.candidates[0], max_drop, floor)
        if not fitting:
            smallest = min(result.candidates, key=lambda c: c.flash_bytes)
            raise FitError(f"No candidate fits {board.id}: the thinnest tried (width {smallest.width:g}) needs "
                               f"{smallest.flash_bytes:,} B of flash and {smallest.sram_bytes:,} B of SRAM.")
        best = max(fitting, key=lambda c: c.accuracy_int8)
        raise TinygenError(f"No candidate that fits meets the accuracy floor of {limit:.2%}: the best, width "
                           f"{best.width:g} {best.quantization}, reached {best.accuracy_int8:.2%}, "
                           f"{(limit - best.accuracy_int8) * 100:.2f} points short.")
    chosen_bytes, tflite = result.models[result.chosen_index]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "search.png"
        search_png(result, png)
        files = {"model.keras": chosen_bytes, "model.tflite": tflite, "search.png": png.read_bytes()}
    result.out_dir = Path(out_dir)
    result.files = sorted(list(files) + ["search.json"])
    files["search.json"] = json.dumps(result.to_json(), indent=2) + "\n"
    write_tree(Path(out_dir), files, force=force)
    return result
