"""Width multipliers: rebuild a Keras model with the channels of its Conv2D, DepthwiseConv2D
(through its pointwise neighbours) and Dense layers scaled by alpha, input and output shapes
unchanged, initialised from the original by keeping its most important filters (L1 norm).

Channels are tracked as groups over the layer graph: a Conv2D or Dense starts a group, layers
that keep channels (BatchNorm, activations, pooling, DepthwiseConv2D with multiplier 1, padding,
dropout) pass theirs on, and the inputs of an Add/Multiply/Average/Maximum/Subtract are tied into
one group (union-find), so residual connections stay consistent; a Concatenate's output is its
inputs' groups side by side; a Flatten before a Dense expands the selection over positions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import TinygenError

INPUT = "__input__"     # a Sequential model's input, which is not among its layers

PASS_THROUGH = {"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Dropout",
                "SpatialDropout2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "InputLayer",
                "ActivityRegularization", "GaussianNoise"}
ELEMENTWISE = {"Add", "Multiply", "Average", "Maximum", "Minimum", "Subtract"}


class WidthError(TinygenError):
    """A layer that cannot be width-scaled."""


@dataclass
class _Tensor:
    """Channel layout of one layer output: a list of (group, count) segments, and the spatial
    size it was flattened from (for a Flatten)."""

    segments: list[tuple[int, int]]
    flattened_from: int = 0          # positions per channel when this is a Flatten's output


@dataclass
class _Groups:
    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    fixed: list[bool] = field(default_factory=list)

    def new(self, n: int, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(n)
        self.fixed.append(fixed)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            self.fixed[a] = self.fixed[a] or self.fixed[b]


def _inbound(model) -> dict[str, list[str]]:
    cfg = model.get_config()
    names = [l["config"]["name"] for l in cfg["layers"]]
    if "inbound_nodes" not in cfg["layers"][-1]:           # Sequential: a chain from the model input
        out, prev = {}, INPUT
        for layer in model.layers:
            out[layer.name] = [prev]
            prev = layer.name
        return out
    out = {}
    for l in cfg["layers"]:
        nodes = l.get("inbound_nodes") or []
        ins = []
        for node in nodes[:1]:
            for item in node:
                ins.append(item[0] if isinstance(item, (list, tuple)) else item["args"][0]["config"]["keras_history"][0])
        out[l["config"]["name"]] = ins
    return {n: out.get(n, []) for n in names}


def plan(model, alpha: float) -> tuple[dict[str, int], dict[str, np.ndarray], dict[str, _Tensor], dict]:
    """(new width per scaled layer, kept indices per group, tensor layouts, inbound map)."""
    if not 0 < alpha <= 1:
        raise WidthError(f"The width multiplier must be in (0, 1], not {alpha}.")
    return _plan(model, lambda importance: {root: max(1, int(round(alpha * len(v)))) for root, v in importance.items()})


def _plan(model, counts):
    """`counts(importance per group root) -> channels to keep per root`; the rest as plan()."""
    inbound = _inbound(model)
    layers = {l.name: l for l in model.layers}
    output_names = {t.name.split("/")[0] for t in model.outputs}
    output_layers = {l.name for l in model.layers if any(o.startswith(l.name) for o in output_names)}
    groups = _Groups()
    tensors: dict[str, _Tensor] = {}
    producers: dict[int, list[str]] = {}
    in_channels = int(model.inputs[0].shape[-1])
    tensors[INPUT] = _Tensor([(groups.new(in_channels, fixed=True), in_channels)])
    for name, ins in inbound.items():
        layer = layers[name]
        kind = type(layer).__name__
        if kind == "InputLayer" or not ins:
            channels = int(layer.output.shape[-1])
            tensors[name] = _Tensor([(groups.new(channels, fixed=True), channels)])
            continue
        src = [tensors[i] for i in ins]
        if kind in ("Conv2D", "Dense"):
            n = layer.filters if kind == "Conv2D" else layer.units
            g = groups.new(n, fixed=name in output_layers)
            producers.setdefault(g, []).append(name)
            tensors[name] = _Tensor([(g, n)])
        elif kind == "DepthwiseConv2D":
            if layer.depth_multiplier != 1:
                raise WidthError(f"Layer '{name}' (DepthwiseConv2D with depth multiplier {layer.depth_multiplier}) "
                                 "cannot be width-scaled.")
            tensors[name] = src[0]
        elif kind in PASS_THROUGH:
            tensors[name] = src[0]
        elif kind in ELEMENTWISE:
            first = src[0]
            for other in src[1:]:
                if len(other.segments) != len(first.segments):
                    raise WidthError(f"Layer '{name}' ({kind}) joins tensors with different channel layouts.")
                for (a, _), (b, _) in zip(first.segments, other.segments):
                    groups.union(a, b)
            tensors[name] = first
        elif kind == "Concatenate" and layer.axis in (-1, len(layer.output.shape) - 1):
            tensors[name] = _Tensor([s for t in src for s in t.segments])
        elif kind == "Flatten":
            shape = layer.input.shape
            positions = math.prod(int(d) for d in shape[1:-1]) if len(shape) > 2 else 1
            tensors[name] = _Tensor(src[0].segments, flattened_from=positions)
        else:
            raise WidthError(f"Layer '{name}' ({kind}) cannot be width-scaled; tinygen scales Conv2D, "
                             "DepthwiseConv2D and Dense through BatchNorm, activations, pooling, Add and Concatenate.")
    # new sizes and kept indices, per group root, from the summed L1 norm of its producers' filters
    importance: dict[int, np.ndarray] = {}
    for g, names in producers.items():
        root = groups.find(g)
        for n in names:
            w = layers[n].get_weights()[0]
            l1 = np.abs(w).reshape(-1, w.shape[-1]).sum(axis=0)
            importance[root] = importance.get(root, 0) + l1
    scalable = {r: v for r, v in importance.items() if not groups.fixed[r]}
    wanted = counts(scalable)
    keep: dict[int, np.ndarray] = {}
    for g in range(len(groups.parent)):
        root = groups.find(g)
        n = groups.size[root]
        if root not in scalable:
            keep[g] = np.arange(n)
            continue
        keep[g] = np.sort(np.argsort(-importance[root], kind="stable")[:wanted[root]])
    widths = {names_: len(keep[g]) for g, ns in producers.items() for names_ in ns}
    return widths, keep, tensors, inbound


def _selection(t: _Tensor, keep: dict[int, np.ndarray]) -> np.ndarray:
    """Indices (into the original tensor's last axis) that survive."""
    idx, offset = [], 0
    for g, n in t.segments:
        idx.append(keep[g] + offset)
        offset += n
    sel = np.concatenate(idx) if idx else np.arange(0)
    if t.flattened_from:
        channels = offset
        sel = np.concatenate([p * channels + sel for p in range(t.flattened_from)])
    return sel


def scale_width(model, alpha: float):
    """The thinner model, with the kept filters' weights copied in."""
    return _rebuild(model, *plan(model, alpha))


def prune_filters(model, sparsity: float, min_keep: float = 0.125):
    """Structured pruning: remove `sparsity` of all filters, the least important first, ranked
    globally (each group's L1 norms divided by their mean, so layers of any scale compare), keeping
    at least `min_keep` of every group. Unlike a width multiplier, layers lose different shares."""
    if not 0 <= sparsity < 1:
        raise WidthError(f"The structured sparsity must be in [0, 1), not {sparsity}.")

    def counts(importance):
        scores = np.concatenate([v / (v.mean() + 1e-12) for v in importance.values()])
        if sparsity == 0 or len(scores) == 0:
            return {r: len(v) for r, v in importance.items()}
        threshold = np.quantile(scores, sparsity)
        return {r: max(int(np.ceil(min_keep * len(v))), int(np.sum(v / (v.mean() + 1e-12) > threshold)))
                for r, v in importance.items()}

    return _rebuild(model, *_plan(model, counts))


def _rebuild(model, widths, keep, tensors, inbound):
    from ..model.tf import keras

    k = keras()
    cfg = model.get_config()
    for l in cfg["layers"]:
        name = l["config"]["name"]
        if name in widths:
            key = "filters" if l["class_name"] == "Conv2D" else "units"
            l["config"][key] = widths[name]
    thin = (k.Sequential.from_config(cfg) if isinstance(model, k.Sequential)
            else k.Model.from_config(cfg))
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kind = type(layer).__name__
        ins = inbound.get(layer.name, [])
        in_sel = _selection(tensors[ins[0]], keep) if ins else None
        out_sel = _selection(tensors[layer.name], keep)
        if kind == "Conv2D":
            new = [weights[0][:, :, in_sel, :][..., out_sel]] + [b[out_sel] for b in weights[1:]]
        elif kind == "Dense":
            new = [weights[0][in_sel][:, out_sel]] + [b[out_sel] for b in weights[1:]]
        elif kind == "DepthwiseConv2D":
            new = [weights[0][:, :, in_sel, :]] + [b[in_sel] for b in weights[1:]]
        elif kind == "BatchNormalization":
            new = [w[out_sel] for w in weights]
        else:
            raise WidthError(f"Layer '{layer.name}' ({kind}) has weights tinygen does not know how to slice.")
        thin.get_layer(layer.name).set_weights(new)
    return thin
