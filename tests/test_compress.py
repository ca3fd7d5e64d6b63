"""Compressed weights and coded images: TFLM's compressed tensors (tinygen/tflm/compress.py)
run bit-exactly in the tflite-micro interpreter and are counted byte for byte by the fit check;
the Huffman image (tinygen/model/coded.py) decodes with the firmware's C decoder
(firmware/common/tg_huffman.c, compiled here for the host) to the same bytes."""

import ctypes
import lzma
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinygen.model import coded

ROOT = Path(__file__).resolve().parents[1]
DECODER = ROOT / "firmware" / "common" / "tg_huffman.c"
SHARED = ROOT.parent / "shared" / "models"


# --- the coded image ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    """tg_huffman.c built for this machine with gcc, as a shared library."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    lib = tmp_path_factory.mktemp("huffman") / "libtg_huffman.so"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", str(DECODER), "-o", str(lib)],
                   check=True, capture_output=True)
    so = ctypes.CDLL(str(lib))
    so.tg_huffman_decode.restype = ctypes.c_int32
    so.tg_huffman_size.restype = ctypes.c_int32

    def decode(image: bytes, cap: int | None = None):
        cap = so.tg_huffman_size(image, len(image)) if cap is None else cap
        out = ctypes.create_string_buffer(max(cap, 1))
        n = so.tg_huffman_decode(image, len(image), out, max(cap, 0))
        return None if n < 0 else out.raw[:n]
    return decode


def _samples() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "empty": b"",
        "one byte": b"\x07",
        "one value": b"\xaa" * 1000,
        "every byte value once": bytes(range(256)),
        "uniform": rng.integers(0, 256, 5000).astype(np.uint8).tobytes(),
        # value s 2**s times: a plain Huffman code would be 20 bits deep, the limit is 15
        "geometric": np.repeat(np.arange(20, dtype=np.uint8), 2 ** np.arange(20)).tobytes(),
        "sparse int8 weights": np.where(rng.random(50_000) < 0.9, 0, rng.integers(-8, 8, 50_000)).astype(np.int8).tobytes(),
    }


@pytest.mark.parametrize("name", list(_samples()))
def test_c_decoder_gives_back_what_python_encoded(decoder, name):
    data = _samples()[name]
    image = coded.huffman_encode(data)
    assert decoder(image) == data
    assert coded.huffman_decode(image) == data
    assert len(image) <= coded.HEADER_BYTES + len(data) + 1 or name in ("one byte", "empty")


def test_code_lengths_are_limited_and_near_the_entropy():
    data = _samples()["geometric"]
    counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
    lengths = coded._code_lengths(counts)
    assert lengths.max() == coded.MAX_CODE_BITS               # the limit was needed, and held
    assert np.sum(2.0 ** -lengths[lengths > 0]) <= 1.0        # Kraft: a prefix code
    p = counts[counts > 0] / counts.sum()
    entropy_bytes = -(p * np.log2(p)).sum() * len(data) / 8
    payload = len(coded.huffman_encode(data)) - coded.HEADER_BYTES
    assert entropy_bytes <= payload <= entropy_bytes * 1.02 + 1


def test_c_decoder_refuses_broken_images(decoder):
    data = _samples()["sparse int8 weights"]
    image = coded.huffman_encode(data)
    assert decoder(image[: len(image) // 2], len(data)) is None       # truncated
    assert decoder(b"XGH1" + image[4:], len(data)) is None            # not TGH1
    assert decoder(image, len(data) - 1) is None                      # no room for it
    oversubscribed = bytearray(image)
    oversubscribed[8:136] = b"\x11" * 128                              # 256 one-bit codes
    assert decoder(bytes(oversubscribed), len(data)) is None


def test_code_keeps_the_smallest_of_three():
    data = _samples()["sparse int8 weights"]
    c = coded.code(data)
    assert c.sizes == {"huffman": len(coded.huffman_encode(data)), "zlib": len(zlib.compress(data, 9)),
                       "lzma": len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))}
    assert c.coded_bytes == min(c.sizes.values()) == c.sizes[c.method]
    back = {"huffman": coded.huffman_decode, "zlib": zlib.decompress, "lzma": lzma.decompress}[c.method](c.data)
    assert back == data


@pytest.mark.skipif(not (SHARED / "vww_96_int8.tflite").exists(), reason="shared MLPerf models not present")
def test_a_real_model_round_trips_through_the_c_decoder(decoder):
    data = (SHARED / "vww_96_int8.tflite").read_bytes()
    image = coded.huffman_encode(data)
    assert len(image) < len(data)
    assert decoder(image) == data


# --- TFLM compressed tensors --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models():
    """A CONV_2D and a FULLY_CONNECTED, int8 with per-channel and with per-tensor weight scales."""
    from tinymodels import _model, _seed_weights, int8
    from tinygen.model.tf import keras

    L = keras().layers
    _seed_weights(7)
    m = _model((8, 8, 16), L.Conv2D(16, 3, activation="relu"), L.Flatten(), L.Dense(32))
    return {"per-channel": int8(m), "per-tensor": int8(m, per_channel=False)}


@pytest.mark.parametrize("quantization", ["per-channel", "per-tensor"])
@pytest.mark.parametrize("per_channel_centroids", [False, True])
def test_compressed_model_runs_bit_exact_in_tflm(tiny_models, quantization, per_channel_centroids):
    from tinygen.model.graph import parse
    from tinygen.shrink.cluster import cluster_int8
    from tinygen.tflm import compress as C

    m = tiny_models[quantization]
    g = parse(m)
    clustered = cluster_int8(m, g, 16, per_channel_centroids)
    gc = parse(clustered)
    for i in C.weight_tensors(gc):
        axis = C.table_axis(gc, i) if per_channel_centroids else None
        assert C.index_bits(C.values(clustered, gc, i), axis) <= 4
    packed = C.compress(clustered, gc)
    assert set(packed.bits) == set(C.weight_tensors(gc)) and set(packed.bits.values()) == {4}
    assert len(packed.model) < len(clustered)
    compressed = parse(packed.model)
    assert compressed.ops.count(C.DECODE_OP) == 1 and compressed.operators[0].op == C.DECODE_OP
    x = C.synthetic_inputs(g, 16)
    exact = C.check_bit_exact(clustered, packed.model, x)
    assert exact.identical and exact.max_abs_diff == 0 and exact.samples == 16
    # and the clustering itself changed the outputs: the comparison is not of a model with itself
    from tinygen.tflm.interpreter import host_arena_bytes
    assert not np.array_equal(C.run(m, x, host_arena_bytes(g)), C.run(clustered, x, host_arena_bytes(gc)))


def test_tables_that_do_not_follow_the_quantization_decode_wrong(tiny_models):
    """Why table_axis follows the weight's quantization: TFLM's LUT decoder lays tables out by the
    quantization scales. If this starts failing, the wheel's decoder honours the table axis."""
    from tflite_micro.tensorflow.lite.micro.compression import spec
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress

    from tinygen.model.graph import parse
    from tinygen.shrink.cluster import cluster_int8
    from tinygen.tflm import compress as C

    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    from tinygen.shrink.cluster import cluster_tensor

    m = tiny_models["per-tensor"]
    g = parse(m)
    dense = [i for i in C.weight_tensors(g) if len(g.tensors[i].shape) == 2][0]
    assert C.table_axis(g, dense) is None
    # 16 values per output channel, different in each: one table cannot stand for them all
    editor = model_editor.read(m)
    t = editor.subgraphs[0].tensors[dense]
    t.buffer.data = cluster_tensor(np.frombuffer(bytes(t.buffer.data), np.int8).reshape(g.tensors[dense].shape),
                                   16, 0).tobytes()
    clustered = bytes(editor.build())
    gc = parse(clustered)
    wrong = bytes(compress(clustered, [spec.Tensor(0, dense, [spec.LookUpTableCompression(4, spec.PerChannel(0))])]))
    assert not C.check_bit_exact(clustered, wrong, C.synthetic_inputs(gc, 8)).identical


def test_fit_counts_the_compressed_model_byte_for_byte(tiny_models):
    from tinygen.boards import load_board
    from tinygen.fit import check_fit
    from tinygen.model.graph import parse
    from tinygen.shrink.cluster import cluster_int8
    from tinygen.tflm import compress as C

    board = load_board("nucleo-l4r5zi")
    m = tiny_models["per-channel"]
    clustered = cluster_int8(m, parse(m), 4)
    packed = C.compress(clustered, parse(clustered))
    dense_report = check_fit(parse(clustered), board)
    report = check_fit(parse(packed.model), board)
    assert report.model_bytes == len(packed.model)
    # and DECODE's code (measured from linked images, tflm/tables/flash.json)
    decode_code = report.runtime_bytes - dense_report.runtime_bytes
    assert 15_000 < decode_code < 25_000
    assert report.flash.total_bytes - dense_report.flash.total_bytes == len(packed.model) - len(clustered) + decode_code
    assert any("DECODE" in n for n in report.runtime_note)
    # the decoded weights live in the arena while their layer runs
    assert report.arena_bytes >= dense_report.arena_bytes
    report.compression = {"coded_bytes": 1}
    assert report.to_json()["compression"] == {"coded_bytes": 1}
    assert "compression" not in dense_report.to_json()


def test_a_model_without_clusterable_weights_is_one_sentence(tiny_models):
    from tinygen.errors import TinygenError
    from tinygen.model.graph import parse
    from tinygen.tflm import compress as C

    m = tiny_models["per-channel"]
    with pytest.raises(TinygenError, match="cluster it first"):
        C.compress(m, parse(m))
