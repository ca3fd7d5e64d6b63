"""The shrink stage: its inputs checked before any training, one recipe (width, pruning) with
distillation, and the search (PTQ/QAT candidates, Pareto front, resumable cache)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygen.errors import TinygenError
from tinygen.shrink.recipe import shrink_inputs


def test_inputs_default_to_the_bundled_example_and_its_split():
    inputs = shrink_inputs(None, None, None)
    assert inputs.bundled and inputs.source.kind == "keras"
    assert inputs.train.x.shape[1:] == (8, 8, 1) and inputs.val.y is not None
    assert len(inputs.train) + len(inputs.val) == 1797      # scikit-learn's digits, split once


def test_inputs_refuse_what_shrinking_cannot_use(shared_models, tmp_path):
    with pytest.raises(TinygenError, match="needs the Keras model, not a tflite"):
        shrink_inputs(shared_models / "ad01_int8.tflite", None, None)
    with pytest.raises(TinygenError, match="Shrinking trains: pass --data"):
        shrink_inputs(shared_models / "ad01.h5", None, None)
    x = np.random.default_rng(0).random((20, 640), dtype=np.float32)
    np.savez(tmp_path / "train.npz", x=x)
    with pytest.raises(TinygenError, match="needs held-out data"):
        shrink_inputs(shared_models / "ad01.h5", tmp_path / "train.npz", None)
    np.savez(tmp_path / "wrong.npz", x=x[:, :10])
    with pytest.raises(TinygenError, match=r"shape \(10,\), but the model takes \(640,\)"):
        shrink_inputs(shared_models / "ad01.h5", tmp_path / "wrong.npz", tmp_path / "train.npz")


@pytest.mark.slow
def test_shrink_the_bundled_example(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "shrink", "--board", "raspberry-pi-pico", "--width", "0.5",
                        "--epochs", "8", "--out", tmp_path / "s", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    orig, chosen = s["candidates"]
    assert chosen["width"] == 0.5 and chosen["quantization"] == "ptq"
    assert chosen["flash_bytes"] < orig["flash_bytes"] and chosen["sram_bytes"] < orig["sram_bytes"]
    assert chosen["accuracy_int8"] > 0.85          # measured on the 450 held-out digits, with labels
    assert (tmp_path / "s" / "model.keras").exists() and (tmp_path / "s" / "model.tflite").exists()


def small_board(tmp_path, flash_bytes: int):
    text = (Path(__file__).parents[1] / "boards" / "raspberry-pi-pico.toml").read_text()
    text = text.replace('id = "raspberry-pi-pico"', 'id = "small"').replace("size = 2_097_152", f"size = {flash_bytes}", 1)
    # a family without a firmware port, so the flash budget's application share stays the default
    # the sizes here were chosen with (the rp2040 port's own is its USB stack's, measured)
    text = text.replace('family = "rp2040"', 'family = "small"')
    assert 'family = "small"' in text
    (tmp_path / "small.toml").write_text(text)
    return tmp_path / "small.toml"


def test_pareto_front():
    from tinygen.shrink.search import Candidate, pareto_front

    def c(acc, flash, sram):
        return Candidate(1.0, 0.0, "ptq", acc, acc, flash, sram, 0, 0, True, 0.0, "labels")

    cands = [c(0.9, 100, 10), c(0.8, 50, 10), c(0.85, 120, 12), c(0.8, 60, 10)]
    assert pareto_front(cands) == [0, 1]     # 2 is beaten by 0 on all three; 3 by 1


@pytest.mark.slow
def test_auto_search_finds_a_model_that_fits_and_resumes(tmp_path):
    board = small_board(tmp_path, 106_752)   # the digits CNN needs ~114 KB at full width
    args = [sys.executable, "-m", "tinygen.cli", "shrink", "--board", board, "--auto", "--max-accuracy-drop", "5",
            "--epochs", "6", "--out", tmp_path / "s", "--json"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["candidates"][0]["width"] == 1.0 and not s["candidates"][0]["fits"]
    assert s["chosen"]["fits"] and (s["chosen"]["width"] < 1.0 or s["chosen"]["sparsity"] > 0)
    assert any(c["pareto"] for c in s["candidates"])
    assert {p.name for p in (tmp_path / "s").iterdir()} == {".tinygen-manifest.json", "model.keras", "model.tflite", "search.json", "search.png"}
    again = json.loads(subprocess.run(args, capture_output=True, text=True, timeout=900).stdout)
    assert again["chosen"] == s["chosen"]
    # resumed from the cache: every trained candidate comes back with the time it took in the first run
    # (trained again, all of them would not take the same to the hundredth of a second)
    trained = [c for c in s["candidates"] if not c.get("cluster_bits")]
    assert len(trained) >= 2
    assert ([c["train_seconds"] for c in again["candidates"] if not c.get("cluster_bits")]
            == [c["train_seconds"] for c in trained])


@pytest.mark.slow
def test_an_accuracy_floor_no_candidate_meets(tmp_path):
    # a floor of 99.9% is above the bundled model's own accuracy: the search says so after measuring
    # the original, without training thinner ones (a floor no fitting candidate meets, below the
    # original's: tests/test_compress_search.py)
    board = small_board(tmp_path, 106_752)
    r = subprocess.run([sys.executable, "-m", "tinygen.cli", "shrink", "--board", board, "--auto", "--accuracy-floor",
                        "0.999", "--epochs", "1", "--out", tmp_path / "s", "--json"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1 and "below the accuracy floor of 99.90%" in r.stderr
    assert "no thinner model distilled from it would meet it" in r.stderr


@pytest.mark.slow
def test_unstructured_sparsity_saves_no_flash_structured_does(tmp_path):
    # one epoch: sizes and sparsity, not accuracy, are checked, and tfmot's pruning schedule ends
    # at 80% of however many steps there are (distill.magnitude_prune), so the sparsity is reached
    def run(*extra):
        r = subprocess.run([sys.executable, "-m", "tinygen.cli", "shrink", "--board", "raspberry-pi-pico", *extra,
                            "--epochs", "1", "--out", tmp_path / "p", "--json"], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["candidates"]

    orig, unstructured = run("--prune", "0.5", "--unstructured")
    assert unstructured["sparsity"] > 0.4
    assert (unstructured["flash_bytes"], unstructured["sram_bytes"]) == (orig["flash_bytes"], orig["sram_bytes"])
    _, structured = run("--prune", "0.5")
    assert structured["flash_bytes"] < orig["flash_bytes"] and structured["macs"] < orig["macs"]


def test_the_search_cache_holds_no_pickle(tmp_path):
    """The cache resumes from JSON and uint8 arrays; a planted pickle, or an .npz holding objects,
    is never loaded (loading a pickle runs the code it carries): that candidate is trained again."""
    import pickle

    from tinygen.shrink.search import Candidate, _cache_load, _cache_save

    cand = Candidate(0.5, 0.3, "ptq", 0.9, 0.88, 1000, 200, 10, 20, True, 1.5, "labels")
    _cache_save(tmp_path / "k.json", cand, b"TFL3 model", b"PK keras")
    assert {p.name for p in tmp_path.iterdir()} == {"k.json", "k.npz"}
    assert _cache_load(tmp_path / "k.json") == (cand, b"TFL3 model", b"PK keras")

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "k.npz").write_bytes(pickle.dumps(Planted()))
    assert _cache_load(tmp_path / "k.json") is None and not marker.exists()
    np.savez(tmp_path / "k.npz", tflite=np.array([Planted()], dtype=object), keras=np.zeros(3, np.uint8))
    meta = json.loads((tmp_path / "k.json").read_text())
    import hashlib

    meta["npz_sha256"] = hashlib.sha256((tmp_path / "k.npz").read_bytes()).hexdigest()   # as a planter would
    (tmp_path / "k.json").write_text(json.dumps(meta))
    assert _cache_load(tmp_path / "k.json") is None and not marker.exists()
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(Planted()))       # an old cache's file: not read
    assert _cache_load(tmp_path / "old.json") is None and not marker.exists()
