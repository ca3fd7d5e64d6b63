"""The layout holds (ARCHITECTURE.md): imports point down the pipeline, never up, never in a circle,
and nothing on the serial and flash path imports TensorFlow."""

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinygen"

# Lower numbers are lower layers. A module may import its own package and any lower layer.
LAYERS = {
    "errors": 0, "resources": 0, "files": 0, "plots": 0, "boards": 0, "ports": 0, "__init__": 0, "__main__": 7,
    "model": 1,
    "tflm": 2, "aot": 2,
    "fit": 3,
    "shrink": 4, "project": 4, "device": 4,
    "pipeline": 5,
    "cli": 6,
}
TENSORFLOW = {"tensorflow", "tf_keras", "tensorflow_model_optimization", "tinygen.model.tf"}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = p
    return mods


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every tinygen module (or outside top-level package) `name` imports, at module level or inside a function."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1] if node.level > 1 else here
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules or not m.startswith("tinygen")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> tuple[str, int]:
    top = module.split(".")[1] if "." in module else "__init__"
    return top, LAYERS[top]


def test_every_package_has_a_layer():
    assert {_layer(m)[0] for m in _graph()} <= set(LAYERS)


def test_no_import_cycles():
    graph = {m: {i for i in deps if i.startswith("tinygen")} for m, deps in _graph().items()}
    cycles, state, stack = [], {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d == m:
                continue
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_down():
    upward = []
    for m, deps in _graph().items():
        top, rank = _layer(m)
        for d in deps:
            if not d.startswith("tinygen"):
                continue
            dtop, drank = _layer(d)
            if dtop != top and drank >= rank and not (rank == 0 and drank == 0):
                upward.append(f"{m} -> {d}")
    assert upward == [], "imports that do not point down: " + ", ".join(sorted(upward))


def test_only_the_cli_prints_or_imports_the_cli():
    offenders = []
    for name, path in _modules().items():
        if name.startswith("tinygen.cli") or name == "tinygen.__main__":
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print" for n in ast.walk(tree)):
            offenders.append(f"{name} prints")
        if any(d.startswith("tinygen.cli") for d in _imports(name, path, _modules())):
            offenders.append(f"{name} imports the CLI")
    # aot.size is also a script (python -m tinygen.aot.size prints the table it measured)
    assert offenders == ["tinygen.aot.size prints"]


def _reaches(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for d in graph.get(m, ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_serial_and_flash_paths_never_import_tensorflow_statically():
    graph = _graph()
    for start in [m for m in graph if m.startswith("tinygen.device")] + ["tinygen.cli.monitor", "tinygen.cli.flash",
                                                                        "tinygen.cli.boards"]:
        reached = _reaches(start, graph) & TENSORFLOW
        assert not reached, f"{start} reaches {reached}"


def test_monitor_and_flash_run_without_tensorflow(tmp_path):
    """In a fresh interpreter: `tinygen monitor` on loop:// and `tinygen flash --dry-run` leave
    TensorFlow unimported."""
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\x00" * 1024)
    code = f"""
import json, sys
from typer.main import get_command
from tinygen.cli import app
cmd = get_command(app)
for args in (["monitor", "--port", "loop://", "--duration", "0.2", "--json"],
             ["flash", "--board", "raspberry-pi-pico", "--dry-run", {str(image)!r}]):
    try:
        cmd.main(args, standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
