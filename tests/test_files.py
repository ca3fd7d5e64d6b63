"""Data safety of every output: tinygen replaces only the files it wrote itself, refuses a folder
that holds the user's, keeps the umask, stays atomic when interrupted, and takes neither a board
file's id nor a broken board file as a reason to write elsewhere or crash."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tinygen import files
from tinygen.files import MANIFEST, OutputError, add_to_tree, check_out_dir, write_tree

REPO = Path(__file__).resolve().parents[1]
TINYGEN = [sys.executable, "-m", "tinygen.cli"]


def tinygen(*args, cwd=None):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(TINYGEN + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def build(out, *extra, cwd=None, model="ad01_int8.tflite"):
    return tinygen("build", "--board", "sparkfun-edge", "--model", REPO.parent / "shared" / "models" / model,
                   "--out", out, *extra, cwd=cwd)


def the_error(r):
    """The one `error:` sentence of a failed command, and no traceback."""
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: its kind, mode and (for files) content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            out[rel] = (oct(st.st_mode), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


def listing(root: Path) -> set[str]:
    return set(snapshot(root))


@pytest.fixture(autouse=True)
def _models(shared_models):
    return shared_models


# --- the data-loss cases, through the command line ------------------------------------------

def test_a_folder_of_the_users_is_refused_then_written_beside_with_force(tmp_path):
    out = tmp_path / "app"
    (out / "src").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes\n")
    (out / "src" / "app.c").write_text("int main(void) { return 0; }\n")
    before = snapshot(out)

    line = the_error(build(out))
    assert str(out) in line and "notes.txt" in line and "src/" in line and "--force" in line
    assert snapshot(out) == before

    r = build(out, "--force", "--json")
    assert r.returncode == 0, r.stderr
    written = set(json.loads(r.stdout)["files"])
    assert {"Makefile", "src/main.cc", "model.tflite", "fit.json"} <= written
    after = snapshot(out)
    for rel, entry in before.items():
        assert after[rel] == entry           # the user's files, byte for byte
    assert {k.split("/")[0] for k in after} == {"notes.txt", "src", MANIFEST} | {w.split("/")[0] for w in written}
    assert {k for k in after if k.startswith("src/")} == {"src/app.c"} | {w for w in written if w.startswith("src/")}


def test_out_dot_in_a_project_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "train.py").write_text("print('training')\n")
    (tmp_path / "data" / "x.csv").write_text("1,2\n")
    before = snapshot(tmp_path)
    line = the_error(build(".", cwd=tmp_path))
    assert "the current folder" in line and str(tmp_path) in line and "train.py" in line and "data/" in line
    assert snapshot(tmp_path) == before


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("a week of measurements\n")
    line = the_error(build(f))
    assert "results.txt is a file" in line
    assert f.read_text() == "a week of measurements\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_a_users_file_with_a_name_tinygen_writes_is_refused_even_with_force(tmp_path):
    out = tmp_path / "fw"
    out.mkdir()
    (out / "Makefile").write_text("all:\n\techo mine\n")
    before = snapshot(out)
    line = the_error(build(out, "--force"))
    assert "Makefile" in line and "not tinygen's" in line
    assert snapshot(out) == before


def test_a_rebuild_replaces_tinygens_files_and_keeps_the_users(tmp_path):
    out = tmp_path / "edge"
    r = build(out, "--json")
    assert r.returncode == 0, r.stderr
    tflm = set(json.loads(r.stdout)["files"])
    assert "src/main.cc" in tflm
    (out / "NOTES.md").write_text("flashed on Tuesday\n")
    (out / "src" / "led.c").write_text("void led(void) {}\n")
    (out / "build").mkdir()                                   # what `make` makes: tinygen's Makefile's
    (out / "build" / "firmware.elf").write_bytes(b"\x7fELF stale")
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == tflm and manifest["trees"] == ["build"]

    r = build(out, "--runtime", "aot", "--json")               # no --force: the folder is tinygen's
    assert r.returncode == 0, r.stderr
    aot = set(json.loads(r.stdout)["files"])
    assert "src/main.c" in aot and "src/main.cc" not in aot
    files_now = {k for k, (mode, data) in snapshot(out).items() if data is not None}
    assert files_now == aot | {"NOTES.md", "src/led.c", MANIFEST}   # tflm's main.cc and the stale build/ are gone
    assert (out / "NOTES.md").read_text() == "flashed on Tuesday\n"
    assert (out / "src" / "led.c").read_text() == "void led(void) {}\n"
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == aot


def test_an_edited_tinygen_file_is_the_users(tmp_path):
    out = tmp_path / "edge"
    assert build(out).returncode == 0
    main = out / "src" / "main.cc"
    main.write_text(main.read_text() + "// blink the LED here\n")
    edited = main.read_bytes()
    line = the_error(build(out))                               # tinygen would write main.cc again
    assert "src/main.cc" in line and "changed since tinygen wrote it" in line
    assert main.read_bytes() == edited
    assert build(out, "--runtime", "aot").returncode == 0     # aot has no main.cc: it stays, now the user's
    assert main.read_bytes() == edited
    assert "src/main.cc" not in json.loads((out / MANIFEST).read_text())["files"]


def test_run_and_shrink_refuse_a_users_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("keep\n")
    before = snapshot(out)
    line = the_error(tinygen("run", "--board", "mps2-an386", "--runtime", "aot", "--model",
                             REPO.parent / "shared" / "models" / "ad01_int8.tflite", "--out", out))
    assert "keep.txt" in line and "--force" in line
    line = the_error(tinygen("shrink", "--board", "sparkfun-edge", "--width", "0.5", "--out", out))
    assert "keep.txt" in line and "--force" in line                # before any training
    assert snapshot(out) == before


def test_output_modes_follow_the_umask_through_the_cli(tmp_path):
    out = tmp_path / "edge"
    r = subprocess.run(["sh", "-c", 'umask 002 && exec "$@"', "sh", *TINYGEN, "build", "--board", "sparkfun-edge",
                        "--model", REPO.parent / "shared" / "models" / "ad01_int8.tflite", "--out", out],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    modes = {rel: int(mode, 8) & 0o777 for rel, (mode, data) in snapshot(out).items()}
    assert out.stat().st_mode & 0o777 == 0o775
    assert modes["src"] == 0o775 and modes["port"] == 0o775
    assert {m for rel, m in modes.items() if rel not in ("src", "port")} == {0o664}


# --- the writer itself ----------------------------------------------------------------------

V1 = {"model.tflite": b"\x00" * 1000, "fit.json": "{}\n", "src/main.c": "int main;\n", "src/a.h": "#pragma once\n"}
V2 = {"model.tflite": b"\x01" * 2000, "fit.json": '{"v": 2}\n', "src/main.c": "int main2;\n", "aot/m.c": "m\n"}


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_modes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_tree(tmp_path / "o" / "deeper", V1, trees=("build",))
        add_to_tree(tmp_path / "o" / "deeper", {"fit.json": "[]\n"})
    finally:
        os.umask(old)
    root = tmp_path / "o"
    for p in [root, *root.rglob("*")]:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert p.stat().st_mode & 0o777 == want, p


def test_files_no_longer_written_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "o"
    write_tree(out, V1, trees=("build",))
    (out / "build").mkdir()
    (out / "build" / "x.o").write_bytes(b"obj")
    (out / "src" / "mine.c").write_text("mine\n")
    write_tree(out, V2)
    assert listing(out) == {MANIFEST, "model.tflite", "fit.json", "src", "src/main.c", "src/mine.c", "aot", "aot/m.c"}
    assert (out / "src" / "mine.c").read_text() == "mine\n"
    assert (out / "model.tflite").read_bytes() == V2["model.tflite"]
    write_tree(out, {"fit.json": "{}\n"})
    # src/ still holds the user's file, so it stays (and is theirs now); aot/ was tinygen's, empty, gone
    assert listing(out) == {MANIFEST, "fit.json", "src", "src/mine.c"}


def test_an_unchanged_file_keeps_its_timestamp(tmp_path):
    write_tree(tmp_path / "o", V1)
    p = tmp_path / "o" / "src" / "main.c"
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    write_tree(tmp_path / "o", dict(V1, **{"fit.json": "[]\n"}))
    assert p.stat().st_mtime_ns == 1_000_000_000          # so make does not rebuild what did not change
    assert (tmp_path / "o" / "fit.json").read_text() == "[]\n"


def test_an_empty_folder_is_fine_and_check_out_dir_refuses_early(tmp_path):
    (tmp_path / "empty").mkdir()
    write_tree(tmp_path / "empty", V1)
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "shrink.json").write_text("mine\n")
    with pytest.raises(OutputError, match="shrink.json"):
        check_out_dir(tmp_path / "users")
    check_out_dir(tmp_path / "users", force=True, names=("model.tflite",))
    with pytest.raises(OutputError, match="shrink.json in .* is not tinygen's"):
        check_out_dir(tmp_path / "users", force=True, names=("model.tflite", "shrink.json"))


def test_shrink_and_search_refuse_before_any_work(tmp_path):
    from tinygen.boards import load_board
    from tinygen.shrink.recipe import shrink
    from tinygen.shrink.search import run_search

    out = tmp_path / "s"
    out.mkdir()
    (out / "model.keras").write_bytes(b"the user's own model")
    board = load_board("sparkfun-edge")
    # no teacher, no data: only the refusal can come first
    with pytest.raises(OutputError, match="model.keras"):
        shrink(board, None, None, None, 0.5, out_dir=out)
    with pytest.raises(OutputError, match="model.keras in .* is not tinygen's"):
        run_search(board, None, tmp_path / "missing.h5", None, None, None, None, 1, out, force=True)
    assert (out / "model.keras").read_bytes() == b"the user's own model"


def test_a_build_folder_of_the_users_is_never_tinygens(tmp_path):
    out = tmp_path / "o"
    (out / "build").mkdir(parents=True)
    (out / "build" / "mine.bin").write_bytes(b"mine")
    with pytest.raises(OutputError, match="build in .* is not tinygen's, and tinygen would write its build output"):
        write_tree(out, V1, force=True, trees=("build",))
    write_tree(out, V1, force=True)                         # no Makefile, no build/ of tinygen's: fine
    with pytest.raises(OutputError, match="build in"):
        add_to_tree(out, trees=("build",))                  # so compile_and_run will not make into it
    assert (out / "build" / "mine.bin").read_bytes() == b"mine"


def test_a_copied_manifest_does_not_vouch_for_a_users_build_folder(tmp_path):
    out = tmp_path / "o"
    write_tree(out, V1, trees=("build",))
    project = tmp_path / "project"
    (project / "build").mkdir(parents=True)
    (project / "build" / "app.bin").write_bytes(b"the user's image")
    shutil.copytree(out, project, dirs_exist_ok=True)        # tinygen's output, manifest and all, copied in
    with pytest.raises(OutputError, match="build in .* is not tinygen's"):
        write_tree(project, V2, trees=("build",))
    write_tree(project, V2)                                  # the copied files are still tinygen's to replace
    assert (project / "build" / "app.bin").read_bytes() == b"the user's image"
    assert (project / "aot" / "m.c").read_text() == "m\n" and not (project / "src" / "a.h").exists()


class Boom(Exception):
    pass


@pytest.mark.parametrize("error, raised", [(Boom(), Boom), (KeyboardInterrupt(), KeyboardInterrupt),
                                           (OSError(errno.ENOSPC, "No space left on device"), OutputError)])
def test_an_interrupted_write_leaves_the_previous_output(tmp_path, monkeypatch, error, raised):
    out = tmp_path / "o"
    write_tree(out, V1)
    before = snapshot(out)
    stage, staged = files._stage, []

    def failing(final, data):
        if final.name != MANIFEST:
            if len(staged) == 2:
                raise error
            staged.append(final)
        return stage(final, data)

    monkeypatch.setattr(files, "_stage", failing)
    with pytest.raises(raised):
        write_tree(out, V2)
    assert len(staged) == 2
    assert snapshot(out) == before                          # every file, the manifest, no temporaries
    monkeypatch.undo()
    write_tree(out, V2)
    assert (out / "aot" / "m.c").read_text() == "m\n" and not (out / "src" / "a.h").exists()


def test_ctrl_c_during_the_renames_waits_for_them(tmp_path, monkeypatch):
    out = tmp_path / "o"
    write_tree(out, V1)
    replace = os.replace

    def interrupted(src, dst):
        if Path(dst).name != MANIFEST:                     # Ctrl-C as the first file is renamed
            os.kill(os.getpid(), signal.SIGINT)
        replace(src, dst)

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_tree(out, V2)
    monkeypatch.undo()
    for rel, content in V2.items():                        # all of the new output, complete
        data = (out / rel).read_bytes()
        assert data == (content.encode() if isinstance(content, str) else content)
    assert not (out / "src" / "a.h").exists()
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == set(V2)


KILLED = """
import os, sys
from pathlib import Path
from tinygen import files
phase, after = sys.argv[2], int(sys.argv[3])
count = [0]
def counting(real):
    def call(*a):
        if count[0] == after:
            os._exit(9)
        count[0] += 1
        return real(*a)
    return call
if phase == "stage":
    files._stage = counting(files._stage)
else:
    files.os.replace = counting(os.replace)
files.write_tree(Path(sys.argv[1]), {"model.tflite": b"\\x01" * 2000, "fit.json": '{"v": 2}\\n',
                                     "src/main.c": "int main2;\\n", "aot/m.c": "m\\n"})
"""


@pytest.mark.parametrize("phase, after", [("stage", 2), ("rename", 3)])
def test_a_killed_write_leaves_complete_files_and_the_next_one_cleans_up(tmp_path, phase, after):
    out = tmp_path / "o"
    write_tree(out, V1)
    r = subprocess.run([sys.executable, "-c", KILLED, out, phase, str(after)], capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    for rel in set(V1) | set(V2):                           # each file is wholly the old or the new one
        p = out / rel
        if p.exists():
            assert p.read_bytes() in [(v.encode() if isinstance(v, str) else v) for v in (V1.get(rel), V2.get(rel))
                                      if v is not None]
    write_tree(out, V1)                                      # no --force: it is all still tinygen's
    assert listing(out) == {MANIFEST, "model.tflite", "fit.json", "src", "src/main.c", "src/a.h"}


def test_a_manifest_cannot_reach_outside_its_folder(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "o"
    write_tree(out, V1)
    m = json.loads((out / MANIFEST).read_text())
    m["files"]["../victim.txt"] = "0" * 64
    (out / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(OutputError, match="damaged"):
        write_tree(out, V2)
    assert victim.read_text() == "precious\n"

    # a folder of tinygen's swapped for a link to the user's: nothing is deleted through it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.h").write_text("#pragma once\n")         # the same bytes tinygen wrote as src/a.h
    out2 = tmp_path / "o2"
    write_tree(out2, V1)
    for p in (out2 / "src").iterdir():
        p.unlink()
    (out2 / "src").rmdir()
    (out2 / "src").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="src in .* not tinygen's"):
        write_tree(out2, V1)
    write_tree(out2, {"fit.json": "{}\n"})                   # src/ is no longer written: it is left alone
    assert (elsewhere / "a.h").read_text() == "#pragma once\n" and (out2 / "src").is_symlink()


# --- board files cannot steer writes or crash tinygen --------------------------------------

def board_file(tmp_path: Path, board_id: str) -> Path:
    text = (REPO / "boards" / "nucleo-l4r5zi.toml").read_text().replace('id = "nucleo-l4r5zi"', f'id = "{board_id}"')
    p = tmp_path / "board.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("board_id", ["", "../../escaped", "{tmp}/abs", ".hidden"])
def test_a_board_id_that_is_not_a_name_is_refused(tmp_path, board_id):
    board_id = board_id.replace("{tmp}", str(tmp_path))
    work = tmp_path / "work" / "here"
    (work / "build" / "other-board").mkdir(parents=True)
    (work / "build" / "other-board" / "fit.json").write_text("{}\n")
    p = board_file(tmp_path, board_id)
    before = snapshot(tmp_path)
    line = the_error(tinygen("build", "--board", p, "--model", REPO.parent / "shared" / "models" / "ad01_int8.tflite",
                             cwd=work))
    assert "board.toml" in line and "'id'" in line and "name" in line
    assert snapshot(tmp_path) == before


def _deep(p: Path):
    p.write_text('id = "deep"\nx = ' + "[" * 5000 + "]" * 5000 + "\n")


def _folder(p: Path):
    p.mkdir()


def _not_utf8(p: Path):
    p.write_bytes((REPO / "boards" / "nucleo-l4r5zi.toml").read_bytes().replace(b"STM32", b"STM\xe932"))


def _nul(p: Path):
    p.write_bytes((REPO / "boards" / "nucleo-l4r5zi.toml").read_bytes().replace(b"\n", b"\n\x00", 1))


@pytest.mark.parametrize("name, make, says", [
    ("deep.toml", _deep, "too deeply"),
    ("x.toml", _folder, "is a folder, not a board file"),
    ("a" * 300 + ".toml", None, "File name too long"),
    ("latin1.toml", _not_utf8, "not UTF-8"),
    ("nul.toml", _nul, "NUL byte"),
])
def test_a_broken_board_file_is_one_sentence(tmp_path, name, make, says):
    if make is not None:
        make(tmp_path / name)
    line = the_error(tinygen("fit", "--board", name, "--model", REPO.parent / "shared" / "models" / "ad01_int8.tflite",
                             cwd=tmp_path))
    assert says in line and name[:40] in line


# --- files named on the command line: --plot FILE, --log FILE ---------------------------------

from tinygen.files import FILE_RECORD, OutFile, check_out_file, write_file  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_users_file_is_never_overwritten_by_a_file_option(tmp_path):
    mine = tmp_path / "mem.png"
    mine.write_bytes(b"my own picture")
    with pytest.raises(OutputError, match=r"--plot .*mem\.png is a file tinygen did not write: choose another name, "
                                          r"or delete it yourself"):
        check_out_file(mine, "--plot")
    with pytest.raises(OutputError, match="did not write"):
        write_file(mine, b"tinygen's", "--plot")
    assert mine.read_bytes() == b"my own picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem.png"]   # no record, no temporary


def test_tinygens_own_file_is_replaced_and_an_edited_one_is_the_users(tmp_path):
    out = tmp_path / "new" / "mem.png"       # its folder is made, as for --out
    write_file(out, b"first", "--plot")
    write_file(out, b"second", "--plot")     # the same command again: over tinygen's own output
    assert out.read_bytes() == b"second"
    record = json.loads((out.parent / FILE_RECORD).read_text())
    assert record["files"] == {"mem.png": files._sha256(b"second")}
    assert sorted(p.name for p in out.parent.iterdir()) == [FILE_RECORD, "mem.png"]
    out.write_bytes(b"second, annotated by hand")
    with pytest.raises(OutputError, match="was changed since tinygen wrote it, so it is yours now"):
        write_file(out, b"third", "--plot")
    assert out.read_bytes() == b"second, annotated by hand"
    # a file of the user's with tinygen's earlier content elsewhere is not vouched for
    other = tmp_path / "copy.png"
    other.write_bytes(b"second")
    with pytest.raises(OutputError, match="did not write"):
        write_file(other, b"x", "--plot")


def test_what_a_file_option_cannot_name(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "target").write_text("mine too\n")
    os.symlink(tmp_path / "target", tmp_path / "link.png")
    for path, says in [(tmp_path / "dir", "is a folder: name a file in it"),
                       (tmp_path / "link.png", "a link or a device"),
                       (tmp_path / "afile" / "x.png", "afile is a file, not a folder"),
                       (tmp_path / FILE_RECORD, "tinygen's record of its files"),
                       (tmp_path / MANIFEST, "tinygen's record of its files")]:
        with pytest.raises(OutputError, match=says):
            write_file(path, b"x", "--plot")
    assert (tmp_path / "target").read_text() == "mine too\n" and (tmp_path / "afile").read_text() == "mine\n"
    (tmp_path / FILE_RECORD).write_text("{not json")
    before = snapshot(tmp_path)
    for name in ("afile", "fresh.png"):
        with pytest.raises(OutputError, match=f"{FILE_RECORD} is damaged, so tinygen cannot tell its files from yours"):
            write_file(tmp_path / name, b"x", "--plot")
    assert snapshot(tmp_path) == before


def test_a_log_is_written_beside_and_renamed_at_the_end(tmp_path):
    path = tmp_path / "run.csv"
    first = OutFile(path, "--log")
    first.f.write("a\n")
    first.f.flush()
    assert first.tmp.read_text() == "a\n" and not path.exists()   # streamed, in a hidden temporary
    first.close()
    assert path.read_text() == "a\n" and not first.tmp.exists()
    again = OutFile(path, "--log")           # over tinygen's own earlier log
    again.f.write("b\n")
    assert path.read_text() == "a\n"         # the earlier log stays whole until the new one is
    again.close()
    assert path.read_text() == "b\n"
    never = OutFile(path, "--log")
    never.discard()                          # a session that never started
    assert path.read_text() == "b\n" and sorted(p.name for p in tmp_path.iterdir()) == [FILE_RECORD, "run.csv"]
    path.write_text("the user's notes\n")
    with pytest.raises(OutputError, match="was changed since tinygen wrote it"):
        OutFile(path, "--log")
    assert path.read_text() == "the user's notes\n"


def test_a_file_that_appears_while_tinygen_writes_is_kept(tmp_path):
    path = tmp_path / "run.jsonl"
    log = OutFile(path, "--log")
    log.f.write("{}\n")
    path.write_text("made meanwhile by the user\n")
    with pytest.raises(OutputError, match=r"is a file tinygen did not write.*; what tinygen wrote is in .*tinygen-tmp"):
        log.close()
    assert path.read_text() == "made meanwhile by the user\n" and log.tmp.read_text() == "{}\n"


def test_plot_and_log_options_refuse_a_users_file_and_rerun_over_their_own(tmp_path):
    model = REPO.parent / "shared" / "models" / "ad01_int8.tflite"
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"not tinygen's")
    line = the_error(tinygen("fit", "--board", "sparkfun-edge", "--model", model, "--plot", mine))
    assert "--plot" in line and "mine.png is a file tinygen did not write" in line and "delete it yourself" in line
    assert mine.read_bytes() == b"not tinygen's"
    png, log = tmp_path / "mem.png", tmp_path / "run.csv"
    write_file(png, b"an earlier --plot", "--plot")     # tinygen's own earlier output, as a rerun finds it
    write_file(log, b"an earlier --log", "--log")
    r = tinygen("fit", "--board", "sparkfun-edge", "--model", model, "--plot", png)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == PNG
    (tmp_path / "notes.csv").write_text("mine\n")
    for option, name in (("--log", "notes.csv"), ("--plot", "mine.png")):
        line = the_error(tinygen("monitor", "--port", "loop://", "--duration", "0.2", option, tmp_path / name))
        assert f"{option} " in line and "is a file tinygen did not write" in line
    assert (tmp_path / "notes.csv").read_text() == "mine\n" and mine.read_bytes() == b"not tinygen's"
    r = tinygen("monitor", "--port", "loop://", "--duration", "0.2", "--json", "--log", log)
    assert r.returncode == 0, r.stderr
    assert log.read_text().startswith("time,raw,valid")
    assert not list(tmp_path.glob(".*tinygen-tmp"))


def test_a_plot_tinygen_wrote_does_not_make_the_folder_the_users(tmp_path):
    """`fit --plot mem.png` then `build --out .` in the same folder: the picture and the record
    beside it are tinygen's, so the folder is not refused as holding a user's files; edited, the
    picture is the user's again."""
    write_file(tmp_path / "mem.png", PNG + b"tinygen's", "--plot")
    check_out_dir(tmp_path)
    write_tree(tmp_path, {"model.tflite": b"m"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([FILE_RECORD, MANIFEST, "mem.png", "model.tflite"])
    other = tmp_path / "other"
    write_file(other / "mem.png", PNG + b"tinygen's", "--plot")
    (other / "mem.png").write_bytes(PNG + b"edited by the user")
    with pytest.raises(OutputError, match=r"holds files tinygen did not write \(mem\.png\)"):
        check_out_dir(other)
