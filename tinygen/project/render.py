"""The firmware project around a model: Jinja templates (templates/) rendered with
StrictUndefined, plus tinygen's hand-written board port (firmware/) copied in, so the
output folder builds on its own with `make` or `cmake`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..boards import Board
from ..fit import ARENA_MARGIN_BYTES, FitReport
from ..model.graph import Graph
from ..ports import Port, PortError, port_for
from ..resources import resource_dir, template_env
from ..tflm.flash import tflm_ops

INPUT_SOURCES = ("test-vectors", "serial", "camera")
AOT_INPUT_SOURCES = ("test-vectors", "serial")
HARNESSES = ("tinygen", "mlperf")
# firmware/ files every project gets in port/, beside the port's own
_COMMON = ["include/tinygen_board.h", "common/harness.h", "common/harness.c", "common/syscalls.c"]
_MLPERF = ["common/mlperf_dut.h", "common/mlperf_dut.c"]

_FLASH_HOWTO = {
    "bossac": "Double-tap the Nano's reset button (the LED pulses while Arduino's bootloader waits), then "
              "`tinygen flash build/firmware.elf --board arduino-nano-33-ble-sense --port /dev/ttyACM0`, or by hand "
              "with the Arduino mbed core's bossac (the bootloader adds 0x10000 to bossac's addresses, so the "
              "offset is 0):\n\n```sh\nbossac -d --port=/dev/ttyACM0 -U -i -e -w -v --offset=0x0 -R "
              "build/firmware.bin\n```\n\nThe console is USB CDC (tinygen's descriptor, 1209:0001, not Arduino's "
              "IDs): the firmware waits for a terminal to open the port before it prints. Opening the port at "
              "1200 baud resets the board into the bootloader, as with Arduino sketches.",
    "qemu": "No board needed: `make run` boots `build/firmware.elf` in qemu-system-arm (mps2-an386) and "
            "prints the UART here; the firmware exits when it has run every test vector.",
    "ambiq-uart": "Put the Edge in its bootloader (hold button 14, press reset), then send the image with the "
                  "Ambiq secure bootloader's wired update, as SparkFun's own Makefiles do:\n\n"
                  "```sh\npython3 $AMBIQ_ROOT/boards_sfe/common/tools_sfe/asb/asb.py --bin build/firmware.bin "
                  "--load-address-blob 0x20000 --magic-num 0xCB -o build/firmware --version 0x0 "
                  "--load-address-wired 0xC000 -i 6 --options 0x1 -b 921600 -port /dev/ttyUSB0 -r 2 -v\n```\n\n"
                  "Then open the port at 115200 baud to read the lines.",
    "uf2": "Hold BOOTSEL while plugging the Pico in: it mounts as the RPI-RP2 drive. Copy `build/firmware.uf2` "
           "onto it (or run `tinygen flash --board raspberry-pi-pico .`); the Pico restarts into the firmware. "
           "Then open its USB serial port (/dev/ttyACM0) to read the lines: the firmware waits until the port is "
           "open. Built with `make CONSOLE=uart`, they come out of UART0 (GP0 TX, GP1 RX) at 115200 baud instead.",
    "pyocd": "Plug in the board's debug USB (its on-board CMSIS-DAP or ST-LINK probe), then `tinygen flash --board "
             "{board} .` (programs, reads back and resets through pyocd), or by hand:\n\n```sh\npyocd flash -t "
             "{target} build/firmware.elf\n```\n\n{pack}Then open the probe's serial port (/dev/ttyACM0) at "
             "{baud} baud to read the lines.",
}


def _flash_howto(board: Board) -> str:
    """How the generated README tells a user to flash: the runner's text, with the board's names filled in."""
    tool = board.raw.get("flash_tool", {})
    target = tool.get("target", "")
    # a target pyocd does not build in comes from the vendor's pack, installed once
    pack = (f"pyocd knows `{target}` from ST's device pack: `pyocd pack install {target}` once first.\n\n"
            if target.startswith("stm32") else "")
    text = _FLASH_HOWTO.get(board.runner)
    if text is None:
        return f"Flash `build/firmware.bin` at 0x{board.app_flash_origin:X} with the tool your board's vendor provides."
    return text.format(board=board.id, target=target, pack=pack, baud=board.baud)


ProjectError = PortError   # a firmware project cannot be made for this board or input
Vectors = tuple[np.ndarray, np.ndarray]   # (int8 inputs, the reference interpreter's outputs)


def _port_context(board: Board, port: Port, camera: dict | None = None) -> dict:
    """What every project template takes from the board and its port: sources, SDK paths (as
    make and as CMake spell a variable), the emulator command, how to flash."""
    sdk = port.sdk
    # every SDK's paths, each under its own variable; the camera's files are in the first SDK
    sdks = [dict(s, includes=list(s.get("includes", [])) + list((camera or {}).get("sdk_includes", []) if n == 0 else []),
                 sources=list(s.get("sources", [])) + list((camera or {}).get("sdk_sources", []) if n == 0 else []),
                 libs=list(s.get("libs", []))) for n, s in enumerate(port.sdks)]
    make = [(f"$({s['variable']})", f"${{{s['variable']}}}", s) for s in sdks]
    return {
        "version": __version__, "board": board, "project_name": "tinygen_firmware",
        "defines": list(port.defines), "linker_script": port.linker_script, "sdk": sdk, "sdks": sdks,
        "sdk_includes": [f"{var}/{i}".rstrip("/.") if i != "." else var for var, _, s in make for i in s["includes"]],
        "sdk_libs": [f"{var}/{l}" for var, _, s in make for l in s["libs"]],
        "sdk_sources": sdks[0]["sources"] if sdks else [],
        "sdk_source_groups": [{"variable": s["variable"], "sources": s["sources"]} for s in sdks if s["sources"]],
        "sdk_includes_cmake": [f"{cv}/{i}" if i != "." else cv for _, cv, s in make for i in s["includes"]],
        "sdk_libs_cmake": [f"{cv}/{l}" for _, cv, s in make for l in s["libs"]],
        "sdk_sources_cmake": [f"{cv}/{f}" for _, cv, s in make for f in s["sources"]],
        "run": list(port.run) if port.run else None,
        "make_include": port.make_include,
        "flash_instructions": _flash_howto(board),
    }


def _port_files(port: Port, extra_sources: list[str], common: list[str]) -> dict[str, str]:
    """port/: the board port's sources and linker script, and the shared C from firmware/."""
    fw = resource_dir("firmware")
    files = {f"port/{name}": (port.directory / name).read_text()
             for name in list(port.sources) + list(port.headers) + [port.linker_script] + extra_sources}
    files.update({f"port/{Path(rel).name}": (fw / rel).read_text() for rel in common})
    return files


def _c_bytes(values: np.ndarray, per_line: int = 16, indent: str = "        ") -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    lines = [indent + ", ".join(str(v) for v in flat[i:i + per_line]) + "," for i in range(0, len(flat), per_line)]
    return "\n".join(lines)


def _io(graph: Graph, index: int) -> dict:
    t = graph.tensors[index]
    return {"shape": list(t.shape), "elements": t.elements, "scale": t.first_scale, "zero_point": t.first_zero_point}


MLPERF_MODES = ("performance", "energy")
_MLPERF_ENERGY_BAUD = 9600   # the energy set-up's DUT UART (benchmark/runner devices_*.yaml, the references' th_serialport_initialize)
_MLPERF_INPUT_ENUMS = {"int8": "MLPERF_INPUT_INT8", "uint8": "MLPERF_INPUT_UINT8", "float32": "MLPERF_INPUT_FLOAT32"}
_MLPERF_OUTPUT_ENUMS = {"vector": "MLPERF_OUTPUT_VECTOR", "mse": "MLPERF_OUTPUT_MSE"}


def _mlperf(graph: Graph, model_name: str, board: Board, port: Port, requested: str | None,
            mode: str) -> tuple[dict, list[str], list[str]]:
    """The MLPerf harness's template context (the benchmark the DUT reports and how it converts
    the runner's bytes), its defines and the port's sources it adds in energy mode."""
    from ..model.mlperf_tiny import benchmark_for

    if mode not in MLPERF_MODES:
        raise ProjectError(f"--mlperf-mode must be one of {', '.join(MLPERF_MODES)}, not '{mode}'.")
    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    if t_in.dtype != "INT8":
        raise ProjectError(f"The MLPerf harness feeds an int8 input tensor; this model's input is {t_in.dtype.lower()}.")
    b = benchmark_for(Path(model_name).name, graph.sha256, t_in.shape, t_out.elements, requested)
    context = {"id": b.id, "payload_bytes": b.payload_bytes, "input_kind": b.input_kind,
               "input_enum": _MLPERF_INPUT_ENUMS[b.input_kind], "output_enum": _MLPERF_OUTPUT_ENUMS[b.output_kind]}
    if mode == "performance":
        return context, [], []
    pin = board.raw.get("serial", {}).get("timestamp_pin")
    if pin is None:
        raise ProjectError(f"MLPerf's energy mode pulses a timestamp pin, and {board.id}'s board profile names none "
                           "(serial.timestamp_pin); use --mlperf-mode performance.")
    if not (port.directory / "timestamp_pin.c").is_file():
        raise ProjectError(f"The {port.family} port cannot drive a timestamp pin yet (no timestamp_pin.c); "
                           "use --mlperf-mode performance.")
    return context, ["TG_MLPERF_ENERGY=1", f"TG_TIMESTAMP_PIN={pin}u", f"TG_UART_BAUD={_MLPERF_ENERGY_BAUD}"], \
        ["timestamp_pin.c"]


def render_project(report: FitReport, model_name: str, input_source: str,
                   vectors: Vectors | None = None, vectors_source: str = "",
                   labels: list[str] | None = None, raw_output: bool = False,
                   harness: str = "tinygen", mlperf_model: str | None = None,
                   mlperf_mode: str = "performance") -> dict[str, str | bytes]:
    """{relative path: content} of the TFLM firmware project. The model C array is added by the caller.
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
    port = port_for(board)
    camera = None
    if input_source == "camera":
        if port.camera is None:
            raise ProjectError(f"{board.id} has no camera tinygen can read; use --input test-vectors or serial.")
        shape = graph.tensors[graph.inputs[0]].shape
        if len(shape) != 4:
            raise ProjectError(f"--input camera needs an image model (input N x H x W x C); this one takes {list(shape)}.")
        camera = dict(port.camera, model_height=shape[1], model_width=shape[2], model_channels=shape[3])
    mlperf, mlperf_defines, mlperf_sources = (_mlperf(graph, model_name, board, port, mlperf_model, mlperf_mode)
                                              if harness == "mlperf" else (None, [], []))
    context = dict(
        _port_context(board, port, camera),
        model_name=model_name, sha256=graph.sha256, kernels=report.kernels,
        ops=[{"name": op, "method": tflm_ops()[op]} for op in graph.ops],
        arena_exact_bytes=report.arena_bytes, arena_margin_bytes=ARENA_MARGIN_BYTES,
        arena_reserved_bytes=report.arena_reserved_bytes, arena_required_bytes=report.plan.required_bytes,
        arena_required_phase=report.plan.required_phase, arena_transient_bytes=report.plan.transient_bytes,
        arena_exact=report.plan.exact, unmodelled_ops=report.plan.unmodelled_ops,
        input=_io(graph, graph.inputs[0]), output=_io(graph, graph.outputs[0]),
        labels=labels or [], raw_output=raw_output, input_source=input_source, camera=camera,
        input_description={"test-vectors": "its compiled-in test vectors", "serial": "int8 inputs sent over the serial port",
                           "camera": f"frames from {port.camera['driver'] if port.camera else 'a camera'}",
                           "mlperf": "inputs the MLPerf Tiny runner loads with its DUT protocol"}[input_source],
        harness=harness, mlperf=mlperf,
        c_sources=[f"port/{s}" for s in port.sources] + ["port/harness.c", "port/syscalls.c"]
        + (["port/mlperf_dut.c"] if harness == "mlperf" else []) + [f"port/{s}" for s in mlperf_sources]
        + [f"port/{c}" for c in (camera or {}).get("sources", [])],
        cxx_sources=["src/main.cc", "src/model_data.cc"] + (["src/test_vectors.cc"] if input_source == "test-vectors" else []),
    )
    context["defines"] = context["defines"] + mlperf_defines
    env = template_env()
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
    common = _COMMON + (_MLPERF if harness == "mlperf" else []) + (["include/tinygen_camera.h"] if camera else [])
    files.update(_port_files(port, list((camera or {}).get("sources", [])) + mlperf_sources, common))
    return files


def render_aot_project(report: FitReport, model_name: str, input_source: str,
                       vectors: Vectors | None = None, vectors_source: str = "",
                       raw_output: bool = False, harness: str = "tinygen",
                       reference: str = "TFLite Micro", mlperf_model: str | None = None,
                       mlperf_mode: str = "performance") -> dict[str, str | bytes]:
    """{relative path: content} of a firmware project on tinygen's AOT runtime: the model the fit
    check compiled (aot/tg_model.c and the kernels it calls), main.c, the board port, a Makefile."""
    board, graph, compiled = report.board, report.graph, report.compiled
    if compiled is None:
        raise ProjectError("internal: an AOT project needs the fit check of --runtime aot.")
    if harness not in HARNESSES:
        raise ProjectError(f"--harness must be one of {', '.join(HARNESSES)}, not '{harness}'.")
    if harness == "mlperf":
        input_source = "mlperf"
    elif input_source not in AOT_INPUT_SOURCES:
        raise ProjectError(f"--runtime aot firmware takes --input test-vectors or serial, not {input_source}.")
    port = port_for(board)
    program = compiled.program
    files: dict[str, str | bytes] = {f"aot/{k}": v for k, v in compiled.files.items()}
    out_t = graph.tensors[program.outputs[0]]
    mlperf, mlperf_defines, mlperf_sources = (_mlperf(graph, model_name, board, port, mlperf_model, mlperf_mode)
                                              if harness == "mlperf" else (None, [], []))
    context = dict(
        _port_context(board, port),
        model_name=model_name, sha256=graph.sha256, input_source=input_source, raw_output=raw_output,
        output_ctype="float" if out_t.dtype == "FLOAT32" else "int8_t",
        harness=harness, mlperf=mlperf,
        c_sources=[f"port/{s}" for s in port.sources] + ["port/harness.c", "port/syscalls.c", "src/main.c",
                                                        "aot/tg_model.c"]
        + (["port/mlperf_dut.c"] + [f"port/{s}" for s in mlperf_sources] if harness == "mlperf" else [])
        + [f"aot/{s}" for s in compiled.sources] + (["src/test_vectors.c"] if input_source == "test-vectors" else []),
        opt="-O2", steps=compiled.kernel_calls, arena_bytes=compiled.arena.size,
        weight_bytes=compiled.weight_bytes + compiled.param_bytes,
        input_description={"test-vectors": "its compiled-in test vectors",
                           "serial": "inputs sent over the serial port",
                           "mlperf": "inputs the MLPerf Tiny runner loads with its DUT protocol"}[input_source],
    )
    context["defines"] = context["defines"] + mlperf_defines
    env = template_env()
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
    files.update(_port_files(port, mlperf_sources, _COMMON + (_MLPERF if harness == "mlperf" else [])))
    return files
