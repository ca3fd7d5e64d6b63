"""PNG pictures of what a user would rather look at than read."""

from __future__ import annotations

from pathlib import Path


def layer_memory_png(report, path: Path) -> None:
    """Per layer: live activation bytes and weight bytes, against the planned arena."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = report.graph
    idx = [l.index for l in g.layers]
    labels = [f"{l.index} {l.op}" for l in g.layers]
    acts = [l.activation_bytes / 1024 for l in g.layers]
    weights = [l.weight_bytes / 1024 for l in g.layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(idx) + 3), 4.5), dpi=120)
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
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


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
