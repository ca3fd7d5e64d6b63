"""The firmware project around a model: Jinja templates (templates/) rendered with
StrictUndefined, plus tinygen's hand-written board port (firmware/) copied in, so the
output folder builds on its own with `make` or `cmake`."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from . import __version__
from .analyze import Graph
from .boards import Board
from .errors import TinygenError
from .fit import ARENA_MARGIN_BYTES, FitReport, tflm_ops
from .resources import resource_dir

INPUT_SOURCES = ("test-vectors", "serial", "camera")
HARNESSES = ("tinygen", "mlperf")

_FLASH_HOWTO = {
    "qemu": "No board needed: `make run` boots `build/firmware.elf` in qemu-system-arm (mps2-an386) and "
            "prints the UART here; the firmware exits when it has run every test vector.",
    "ambiq-uart": "Put the Edge in its bootloader (hold button 14, press reset), then send the image with the "
                  "Ambiq secure bootloader's wired update, as SparkFun's own Makefiles do:\n\n"
                  "```sh\npython3 $AMBIQ_ROOT/boards_sfe/common/tools_sfe/asb/asb.py --bin build/firmware.bin "
                  "--load-address-blob 0x20000 --magic-num 0xCB -o build/firmware --version 0x0 "
                  "--load-address-wired 0xC000 -i 6 --options 0x1 -b 921600 -port /dev/ttyUSB0 -r 2 -v\n```\n\n"
                  "Then open the port at 115200 baud to read the lines.",
}


class ProjectError(TinygenError):
    """A firmware project cannot be made for this board or input."""


@dataclass
class Port:
    family: str
    directory: Path
    sources: list[str]
    linker_script: str
    defines: list[str]
    sdk: dict | None
    run: list[str] | None
    camera: dict | None = None


def has_port(board: Board) -> bool:
    return (resource_dir("firmware") / "boards" / board.family / "port.toml").exists()


def load_port(board: Board) -> Port:
    directory = resource_dir("firmware") / "boards" / board.family
    manifest = directory / "port.toml"
    if not manifest.exists():
        have = sorted(p.parent.name for p in (resource_dir("firmware") / "boards").glob("*/port.toml"))
        raise ProjectError(
            f"tinygen has no firmware port for the {board.family} family ({board.id}) yet; ports exist for "
            f"{', '.join(have)}. Use --no-project to write the model and fit report only."
        )
    data = tomllib.loads(manifest.read_text())
    sdk = data.get("sdk") or None
    return Port(board.family, directory, data["sources"], data["linker_script"], data.get("defines", []),
                sdk if sdk and sdk.get("variable") else None, data.get("run"), data.get("camera"))


def camera_cost(board: Board) -> tuple[int, int]:
    """(flash, SRAM) bytes the camera input adds: driver code, frame buffer, driver state."""
    cam = load_port(board).camera if has_port(board) else None
    if not cam:
        return 0, 0
    return int(cam.get("flash_bytes", 0)), cam["width"] * cam["height"] + int(cam.get("sram_bytes", 0))


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def _c_bytes(values: np.ndarray, per_line: int = 16, indent: str = "        ") -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    lines = [indent + ", ".join(str(v) for v in flat[i:i + per_line]) + "," for i in range(0, len(flat), per_line)]
    return "\n".join(lines)


def _io(graph: Graph, index: int) -> dict:
    t = graph.tensors[index]
    return {
        "shape": list(t.shape), "elements": t.elements,
        "scale": float(t.scale[0]) if t.scale is not None and len(t.scale) else 1.0,
        "zero_point": int(t.zero_point[0]) if t.zero_point is not None and len(t.zero_point) else 0,
    }


def render_project(report: FitReport, model_name: str, input_source: str,
                   vectors: tuple[np.ndarray, np.ndarray] | None = None, vectors_source: str = "",
                   labels: list[str] | None = None, raw_output: bool = False,
                   harness: str = "tinygen") -> dict[str, str | bytes]:
    """{relative path: content} of the firmware project. The model C array is added by the caller.
    harness "tinygen" prints TG1 lines; "mlperf" answers the MLPerf Tiny DUT protocol instead."""
    board, graph = report.board, report.graph
    if harness not in HARNESSES:
        raise ProjectError(f"--harness must be one of {', '.join(HARNESSES)}, not '{harness}'.")
    if harness == "mlperf":
        input_source = "mlperf"
    if harness == "tinygen" and input_source not in INPUT_SOURCES:
        raise ProjectError(f"--input must be one of {', '.join(INPUT_SOURCES)}, not '{input_source}'.")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ProjectError("The generated firmware handles models with one input and one output.")
    port = load_port(board)
    camera = None
    if input_source == "camera":
        if port.camera is None:
            raise ProjectError(f"{board.id} has no camera tinygen can read; use --input test-vectors or serial.")
        shape = graph.tensors[graph.inputs[0]].shape
        if len(shape) != 4:
            raise ProjectError(f"--input camera needs an image model (input N x H x W x C); this one takes {list(shape)}.")
        camera = dict(port.camera, model_height=shape[1], model_width=shape[2], model_channels=shape[3])
    sdk = port.sdk
    var = f"$({sdk['variable']})" if sdk else ""
    cmake_var = f"${{{sdk['variable']}}}" if sdk else ""
    ops = [{"name": op, "method": tflm_ops()[op]} for op in graph.ops]
    context = {
        "version": __version__, "model_name": model_name, "sha256": graph.sha256,
        "project_name": "tinygen_firmware", "board": board, "kernels": report.kernels, "ops": ops,
        "arena_exact_bytes": report.arena_bytes, "arena_margin_bytes": ARENA_MARGIN_BYTES,
        "arena_reserved_bytes": report.arena_reserved_bytes,
        "arena_exact": report.plan.exact, "unmodelled_ops": report.plan.unmodelled_ops,
        "input": _io(graph, graph.inputs[0]), "output": _io(graph, graph.outputs[0]),
        "labels": labels or [], "raw_output": raw_output, "input_source": input_source,
        "camera": camera,
        "input_description": {"test-vectors": "its compiled-in test vectors", "serial": "int8 inputs sent over the serial port",
                              "camera": f"frames from {port.camera['driver'] if port.camera else 'a camera'}",
                              "mlperf": "inputs the MLPerf Tiny runner loads with its DUT protocol"}[input_source],
        "harness": harness, "mlperf_model": re.sub(r"[^A-Za-z0-9_]", "_", Path(model_name).stem)[:24],
        "defines": port.defines, "linker_script": port.linker_script, "sdk": sdk,
        "sdk_includes": [f"{var}/{i}".rstrip("/.") if i != "." else var
                         for i in list((sdk or {}).get("includes", [])) + list((camera or {}).get("sdk_includes", []))],
        "sdk_libs": [f"{var}/{l}" for l in (sdk or {}).get("libs", [])],
        "sdk_includes_cmake": [f"{cmake_var}/{i}" if i != "." else cmake_var
                               for i in list((sdk or {}).get("includes", [])) + list((camera or {}).get("sdk_includes", []))],
        "sdk_libs_cmake": [f"{cmake_var}/{l}" for l in (sdk or {}).get("libs", [])],
        "sdk_sources": list((sdk or {}).get("sources", [])) + list((camera or {}).get("sdk_sources", [])),
        "sdk_sources_cmake": [f"{cmake_var}/{f}" for f in
                              list((sdk or {}).get("sources", [])) + list((camera or {}).get("sdk_sources", []))],
        "c_sources": [f"port/{s}" for s in port.sources] + ["port/harness.c", "port/syscalls.c"]
        + (["port/mlperf_dut.c"] if harness == "mlperf" else [])
        + [f"port/{c}" for c in (camera or {}).get("sources", [])],
        "cxx_sources": ["src/main.cc", "src/model_data.cc"] + (["src/test_vectors.cc"] if input_source == "test-vectors" else []),
        "run": port.run,
        "flash_instructions": _FLASH_HOWTO.get(board.runner, f"Flash `build/firmware.bin` at 0x{board.app_flash_origin:X} with your usual tool."),
    }
    env = _env()
    files: dict[str, str | bytes] = {
        "src/main.cc": env.get_template("main.cc.j2").render(context),
        "src/model_settings.h": env.get_template("model_settings.h.j2").render(context),
        "Makefile": env.get_template("Makefile.j2").render(context),
        "CMakeLists.txt": env.get_template("CMakeLists.txt.j2").render(context),
        "README.md": env.get_template("README.md.j2").render(context),
    }
    if input_source == "test-vectors":
        if vectors is None:
            raise ProjectError("--input test-vectors needs test vectors.")
        inputs, expected = vectors
        vctx = dict(context, count=len(inputs), source=vectors_source,
                    inputs=[_c_bytes(v) for v in inputs], expected=[_c_bytes(v, 64, "") for v in expected])
        files["src/test_vectors.h"] = env.get_template("test_vectors.h.j2").render(vctx)
        files["src/test_vectors.cc"] = env.get_template("test_vectors.cc.j2").render(vctx)
    fw = resource_dir("firmware")
    for name in port.sources + [port.linker_script] + list((camera or {}).get("sources", [])):
        files[f"port/{name}"] = (port.directory / name).read_text()
    common = [fw / "include" / "tinygen_board.h", fw / "common" / "harness.h", fw / "common" / "harness.c",
              fw / "common" / "syscalls.c"]
    if harness == "mlperf":
        common += [fw / "common" / "mlperf_dut.h", fw / "common" / "mlperf_dut.c"]
    if camera:
        common.append(fw / "include" / "tinygen_camera.h")
    for path in common:
        files[f"port/{path.name}"] = path.read_text()
    return files


def render_aot_project(report: FitReport, model_bytes: bytes, model_name: str, input_source: str,
                       vectors: tuple[np.ndarray, np.ndarray] | None = None, vectors_source: str = "",
                       raw_output: bool = False, harness: str = "tinygen", match: str = "tflm",
                       reference: str = "TFLite Micro") -> dict[str, str | bytes]:
    """{relative path: content} of a firmware project on tinygen's AOT runtime: the model as C
    (aot/tg_model.c), the kernels it calls, main.c, the board port, a Makefile."""
    from . import aot

    board, graph = report.board, report.graph
    if harness != "tinygen":
        raise ProjectError("--runtime aot firmware speaks tinygen's TG1 lines; the MLPerf harness needs --runtime tflm.")
    if input_source not in ("test-vectors", "serial"):
        raise ProjectError(f"--runtime aot firmware takes --input test-vectors or serial, not {input_source}.")
    port = load_port(board)
    program = aot.lower(graph, model_bytes, match)
    arena = aot.plan(program)
    aot.check_plan(program, arena)
    files: dict[str, str | bytes] = {f"aot/{k}": v for k, v in aot.render(program, arena, model_name).items()}
    files.update({f"aot/{k}": v for k, v in aot.kernel_sources(program).items()})
    sdk = port.sdk
    var = f"$({sdk['variable']})" if sdk else ""
    cmake_var = f"${{{sdk['variable']}}}" if sdk else ""
    out_t = graph.tensors[program.outputs[0]]
    context = {
        "version": __version__, "model_name": model_name, "sha256": graph.sha256, "board": board,
        "input_source": input_source, "raw_output": raw_output,
        "output_ctype": "float" if out_t.dtype == "FLOAT32" else "int8_t",
        "defines": port.defines, "linker_script": port.linker_script, "sdk": sdk,
        "sdk_includes": [f"{var}/{i}".rstrip("/.") if i != "." else var for i in (sdk or {}).get("includes", [])],
        "sdk_libs": [f"{var}/{l}" for l in (sdk or {}).get("libs", [])],
        "sdk_sources": list((sdk or {}).get("sources", [])),
        "sdk_includes_cmake": [f"{cmake_var}/{i}" if i != "." else cmake_var for i in (sdk or {}).get("includes", [])],
        "sdk_libs_cmake": [f"{cmake_var}/{l}" for l in (sdk or {}).get("libs", [])],
        "sdk_sources_cmake": [f"{cmake_var}/{f}" for f in (sdk or {}).get("sources", [])],
        "project_name": "tinygen_firmware",
        "c_sources": [f"port/{s}" for s in port.sources] + ["port/harness.c", "port/syscalls.c", "src/main.c",
                                                             "aot/tg_model.c"]
        + [f"aot/{s}" for s in program.sources] + (["src/test_vectors.c"] if input_source == "test-vectors" else []),
        "run": port.run, "opt": "-O2",
        "steps": len([s for s in program.steps if s.kernel]), "arena_bytes": arena.size,
        "weight_bytes": program.weight_bytes,
        "input_description": {"test-vectors": "its compiled-in test vectors",
                              "serial": "inputs sent over the serial port"}[input_source],
        "flash_instructions": _FLASH_HOWTO.get(board.runner, f"Flash `build/firmware.bin` at 0x{board.app_flash_origin:X} with your usual tool."),
    }
    env = _env()
    files["src/main.c"] = env.get_template("aot/main.c.j2").render(context)
    files["Makefile"] = env.get_template("aot/Makefile.j2").render(context)
    files["CMakeLists.txt"] = env.get_template("aot/CMakeLists.txt.j2").render(context)
    files["README.md"] = env.get_template("aot/README.md.j2").render(context)
    if input_source == "test-vectors":
        if vectors is None:
            raise ProjectError("--input test-vectors needs test vectors.")
        inputs, expected = vectors
        as_bytes = lambda a: np.ascontiguousarray(a).view(np.uint8)  # noqa: E731
        vctx = dict(context, count=len(inputs), source=vectors_source, reference=reference,
                    inputs=[_c_bytes(as_bytes(v)) for v in inputs], expected=[_c_bytes(as_bytes(v), 64, "") for v in expected])
        files["src/test_vectors.h"] = env.get_template("aot/test_vectors.h.j2").render(vctx)
        files["src/test_vectors.c"] = env.get_template("aot/test_vectors.c.j2").render(vctx)
    fw = resource_dir("firmware")
    for name in port.sources + [port.linker_script]:
        files[f"port/{name}"] = (port.directory / name).read_text()
    for path in (fw / "include" / "tinygen_board.h", fw / "common" / "harness.h", fw / "common" / "harness.c",
                 fw / "common" / "syscalls.c"):
        files[f"port/{path.name}"] = path.read_text()
    return files
