"""TFLM's flash and static RAM for exactly the ops a model uses, from tables measured on linked
TFLM builds (tables/flash.json), and the ops TFLM implements (tables/ops.toml)."""

from __future__ import annotations

import json
import math
import tomllib
from functools import lru_cache
from pathlib import Path

from ..boards import MEASURED_CORE
from ..errors import UnsupportedOpError
from ..model.graph import Graph

_TABLES = Path(__file__).parent / "tables"
# Alignment and literal pools that symbol sizes do not show. Against real links of five op
# sets per core the symbol union was -0.7% to +3.0% of the linked .text (Thumb-1 code on
# the M0+ runs under); 1% on top keeps every one of those at or above the real size.
_LINK_SLACK = 0.01


@lru_cache(maxsize=None)
def _flash_table() -> dict:
    return json.loads((_TABLES / "flash.json").read_text())


@lru_cache(maxsize=None)
def tflm_ops() -> dict[str, str]:
    """Builtin op -> the MicroMutableOpResolver method that registers it."""
    return tomllib.loads((_TABLES / "ops.toml").read_text())["ops"]


def check_ops(graph: Graph) -> None:
    """Refuse a model that uses an op TFLM does not implement, naming it."""
    missing = [op for op in graph.ops if op not in tflm_ops()]
    if missing:
        names = ", ".join(missing)
        raise UnsupportedOpError(
            f"The model uses {names}, which TensorFlow Lite Micro does not implement; "
            "rebuild the model without it (or register a custom kernel of your own).", missing)


def runtime_flash(ops: list[str], cpu: str) -> tuple[int, int, str]:
    """(flash bytes, static RAM bytes, measured core) of the TFLM runtime with exactly these ops:
    the base interpreter plus the union of the code each op's kernel pulls in."""
    tables = _flash_table()
    core = MEASURED_CORE.get(cpu, "cortex-m4")
    core = core if core in tables else "cortex-m4"
    table = tables[core]
    sizes = table["symbol_bytes"]
    kept: set[int] = set()
    for op in ops:
        kept.update(table["ops"][op])
    code = sum((sizes[i] + 3) // 4 * 4 for i in kept)
    total = table["base_text"] + code
    return total + math.ceil(total * _LINK_SLACK), table["base_ram"], core
