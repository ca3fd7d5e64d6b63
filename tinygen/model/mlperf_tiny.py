"""The MLPerf Tiny benchmarks as the benchmark's host software knows them (mlcommons/tiny,
benchmark/api and benchmark/reference_submissions): the id a DUT reports in `m-model-[...]`,
the bytes the runner loads with `db` and how the reference DUT turns them into the model's
int8 input, and what its `m-results-[...]` line holds. No TensorFlow: the MLPerf client in
device/ reads this table too."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError


@dataclass(frozen=True)
class Benchmark:
    id: str
    task: str
    input_shape: tuple[int, ...]   # without the batch dimension
    output_elements: int
    # What the runner sends and the reference DUT does with it (th_load_tensor):
    #   int8     the input tensor's bytes as they are (kws01)
    #   uint8    pixels 0..255; the DUT subtracts 128 (ic01, vww01)
    #   float32  little-endian floats; the DUT quantizes them with the input's scale and zero
    #            point, rounding half away from zero and clamping (ad01)
    input_kind: str
    # What th_results prints: "vector" the whole dequantized output, or "mse" the mean squared
    # difference between the dequantized output and the float input (ad01's anomaly score)
    output_kind: str
    sha256: str                    # the published int8 model (benchmark/training/*/trained_models)

    @property
    def input_elements(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    @property
    def payload_bytes(self) -> int:
        return self.input_elements * (4 if self.input_kind == "float32" else 1)


BENCHMARKS = {b.id: b for b in [
    Benchmark("kws01", "keyword spotting", (49, 10, 1), 12, "int8", "vector",
              "aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae"),
    Benchmark("vww01", "visual wake words", (96, 96, 3), 2, "uint8", "vector",
              "597a384c8c2c8a1276f04702f25013b7838f2f814f1ca7c174d295b73e3d6b7b"),
    Benchmark("ic01", "image classification", (32, 32, 3), 10, "uint8", "vector",
              "3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415"),
    Benchmark("ad01", "anomaly detection", (640,), 640, "float32", "mse",
              "87cf24194ef93d1d9b11a591d805526b98008e351655d29883c825c9c106ba24"),
    # The streaming wake word: its runner streams audio over I2S (start/stop commands), which
    # tinygen's DUT does not do; `db` + `infer` on int8 feature windows still work.
    Benchmark("sww01", "streaming wake word", (30, 1, 40), 3, "int8", "vector",
              "3af8550895ba7d5c584277102b5075c52dcfa63ba9d2b2240f37c4e6abd5dd2b"),
]}


def _shape(shape) -> tuple[int, ...]:
    s = tuple(int(d) for d in shape)
    return s[1:] if len(s) > 1 and s[0] == 1 else s


def recognise(sha256: str, input_shape, output_elements: int) -> tuple[Benchmark, str] | None:
    """The benchmark a model is, and how that was told: the published model by its hash, or a
    model for the same task (retrained, shrunk, quantized here) by its input and output shapes."""
    for b in BENCHMARKS.values():
        if b.sha256 == sha256:
            return b, "the published reference model"
    for b in BENCHMARKS.values():
        if _shape(input_shape) == b.input_shape and output_elements == b.output_elements:
            return b, "its input and output shapes"
    return None


def benchmark_for(model_name: str, sha256: str, input_shape, output_elements: int,
                  requested: str | None = None) -> Benchmark:
    """The benchmark the DUT reports: `requested` (--mlperf-model) when given, checked against
    the model's input and output, else the one the model is recognised as."""
    ids = ", ".join(BENCHMARKS)
    if requested is None:
        found = recognise(sha256, input_shape, output_elements)
        if found is None:
            raise ModelError(f"{model_name} is not one of the MLPerf Tiny reference models and its shapes match "
                             f"none of their tasks; name its benchmark with --mlperf-model ({ids}).")
        return found[0]
    b = BENCHMARKS.get(requested)
    if b is None:
        raise ModelError(f"--mlperf-model must be one of {ids}, not '{requested}'.")
    elements = 1
    for d in input_shape:
        elements *= int(d)
    want_out = b.input_elements if b.output_kind == "mse" else b.output_elements
    if elements != b.input_elements or output_elements != want_out:
        raise ModelError(f"{requested} ({b.task}) loads {b.input_elements} input values and reads {want_out} "
                         f"outputs, but {model_name} takes {elements} and gives {output_elements}.")
    return b
