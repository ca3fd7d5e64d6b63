"""PNG pictures of what a user would rather look at than read."""

from __future__ import annotations

from pathlib import Path


def layer_memory_png(report, path: Path) -> None:
    """Per layer: live activation bytes and weight bytes, against the planned arena; below it,
    the memory timeline (memory_timeline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = report.graph
    idx = [l.index for l in g.layers]
    labels = [f"{l.index} {l.op}" for l in g.layers]
    acts = [l.activation_bytes / 1024 for l in g.layers]
    weights = [l.weight_bytes / 1024 for l in g.layers]
    series = memory_timeline(report)
    fig, axes = plt.subplots(2 if series else 1, 1, figsize=(max(6, 0.35 * len(idx) + 3), 9 if series else 4.5),
                             dpi=120, squeeze=False)
    ax = axes[0][0]
    w = 0.4
    ax.bar([i - w / 2 for i in idx], acts, w, label="activations in + out (KiB)", color="#4c72b0")
    ax.bar([i + w / 2 for i in idx], weights, w, label="weights and biases (KiB, in flash)", color="#dd8452")
    ax.axhline(report.plan.head_bytes / 1024, color="#c44e52", ls="--",
               label=f"planned activation arena {report.plan.head_bytes / 1024:.1f} KiB")
    ax.set_xticks(idx)
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("KiB")
    sram = report.sram
    ax.set_title(f"{Path(report.model_path).name} on {report.board.id}: SRAM {sram.total_bytes / 1024:.1f} of "
                 f"{sram.budget_bytes / 1024:.0f} KiB, flash {report.flash.total_bytes / 1024:.1f} of "
                 f"{report.flash.budget_bytes / 1024:.0f} KiB", fontsize=9)
    ax.legend(fontsize=8)
    if series:
        _draw_timeline(axes[1][0], report, series)
        ax.set_xlim(axes[1][0].get_xlim())   # one operator per column in both panels
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def memory_timeline(report) -> dict[str, list[int]]:
    """Bytes per operator (index k: while operator k runs), as lists of equal length:
    "alive" (every activation and scratch buffer alive then: no plan needs less), and for each
    plan the highest byte of its arena in use then: "TFLM greedy", "tinygen offline" (TFLM's
    plans, from the fit report), "tinygen AOT" (with --runtime aot)."""
    n = len(report.graph.operators)
    out: dict[str, list[int]] = {}
    plans = getattr(report, "tflm_plans", None) or {}
    used = plans.get("offline") or plans.get("greedy")
    if used is not None and used.buffers:
        out["alive"] = used.live_bytes()[1:n + 1]            # scope k + 1 is operator k
    for key, name in (("greedy", "TFLM greedy"), ("offline", "tinygen offline")):
        if key in plans and plans[key].buffers:
            out[name] = plans[key].high_water()[1:n + 1]
    c = getattr(report, "compiled", None)
    if c is not None:
        top = [0] * n
        steps, offsets = c.program.steps, c.arena.offsets
        for t, b in c.program.buffers.items():
            for i in range(max(b.first, 0), min(b.last, len(steps) - 1) + 1):
                k = steps[i].op_index
                top[k] = max(top[k], offsets[t] + b.nbytes)
        out["tinygen AOT"] = top
    return {k: v + [0] * (n - len(v)) for k, v in out.items()}


_COLOURS = {"alive": "#bbbbbb", "TFLM greedy": "#c44e52", "tinygen offline": "#4c72b0", "tinygen AOT": "#55a868"}


def _draw_timeline(ax, report, series: dict[str, list[int]]) -> None:
    ops = report.graph.operators
    xs = list(range(len(ops)))
    used = getattr(report, "memory_plan", None)
    for name, ys in series.items():
        kib = [y / 1024 for y in ys]
        peak = max(range(len(ys)), key=lambda k: ys[k]) if ys else 0
        if name == "alive":
            ax.fill_between(xs, kib, step="mid", color=_COLOURS[name], alpha=0.6,
                            label=f"alive at once in TFLM (no buffer-per-tensor plan needs less): peak "
                                  f"{ys[peak] / 1024:.1f} KiB")
            continue
        chosen = (name == "tinygen AOT" if getattr(report, "runtime", "tflm") == "aot" else
                  used is not None and name == {"offline": "tinygen offline", "greedy": "TFLM greedy"}.get(used.used))
        ax.step(xs, kib, where="mid", color=_COLOURS.get(name, "#8172b3"), lw=2.2 if chosen else 1.4,
                ls="-" if chosen else "--",
                label=f"{name} plan: top of the arena in use, peak {ys[peak] / 1024:.1f} KiB"
                      + (" (the firmware's)" if chosen else ""))
        ax.plot([peak], [kib[peak]], "v", color=_COLOURS.get(name, "#8172b3"), ms=8)
        ax.annotate(f"peak: {peak} {ops[peak].op}", (peak, kib[peak]), textcoords="offset points", xytext=(4, 6),
                    fontsize=7, color=_COLOURS.get(name, "#8172b3"))
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{o.index} {o.op}" for o in ops], rotation=70, ha="right", fontsize=7)
    ax.set_xlim(-0.5, len(ops) - 0.5)
    ax.set_ylim(0, max(max(ys) for ys in series.values()) / 1024 * 1.25 + 0.1)   # room for the peak labels
    ax.set_ylabel("KiB of the activation arena")
    ax.set_title("Memory timeline: bytes in use while each operator runs (the persistent tail not included)",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper right")


def layer_ticks_png(report, path: Path) -> None:
    """Per layer of an AOT model: ticks in QEMU for the first test vector (`tinygen run --layers`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report.layers
    labels = [f"{l['op_index']} {l['op']}" for l in layers]
    ticks = [l["ticks"] for l in layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers) + 3), 4.5), dpi=120)
    ax.bar(range(len(layers)), ticks, color="#4c72b0")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("ticks")
    ax.set_title(f"{report.runtime} on {report.board}: {sum(ticks):,} ticks per inference "
                 "(QEMU -icount SysTick, not a real chip's cycles)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def power_trace_png(seconds, current_a, windows, path: Path, title: str, pin=None) -> None:
    """A power monitor's current over the session (mean per millisecond), each measured inference
    window shaded, and the timestamp pin under it where the monitor reads one (`monitor --power`).
    `windows` are (start s, end s, µJ per inference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 if pin is not None and len(pin) else 1
    fig, axes = plt.subplots(rows, 1, figsize=(11, 4.2 if rows == 1 else 5.2), dpi=120, sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [4, 1][:rows]})
    ax = axes[0][0]
    ax.plot(seconds, [a * 1000 for a in current_a], lw=0.7, color="#4c72b0", label="current (mean per ms)", zorder=3)
    for k, (a, b, uj) in enumerate(windows):
        ax.axvspan(a, b, color="#dd8452", alpha=0.3, lw=0, label="inference window" if k == 0 else None)
    span = seconds[-1] - seconds[0] if len(seconds) > 1 else 0.0
    if windows and len(current_a) and all(b - a > span / 25 for a, b, _ in windows):   # room for a label each
        top = max(current_a) * 1000
        for a, b, uj in windows:
            ax.text((a + b) / 2, top, f"{uj:.1f} µJ", ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("current (mA)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    if rows == 2:
        axes[1][0].step(seconds[:len(pin)], pin, where="post", lw=0.7, color="#55a868")
        axes[1][0].set_ylabel("pin")
        axes[1][0].set_yticks([0, 1])
    axes[-1][0].set_xlabel("seconds since the monitor started")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
