import re
from pathlib import Path

import pytest

from tinygen.boards import all_boards, board_ids, load_board
from tinygen.errors import BoardError

REQUIRED = {"sparkfun-edge", "arduino-nano-33-ble-sense", "nucleo-l4r5zi", "stm32f746g-disco", "raspberry-pi-pico", "mps2-an386"}


def test_bundled_boards_load_and_validate():
    assert REQUIRED <= set(board_ids())
    for b in all_boards():
        assert b.id == b.source.stem
        assert 0 < b.app_flash_bytes <= b.flash_size
        assert b.stack_bytes < b.sram_size


def test_sparkfun_edge_figures():
    b = load_board("sparkfun-edge")
    assert b.cpu == "cortex-m4" and b.clock_hz == 48_000_000
    assert b.app_flash_origin == 0xC000
    assert b.app_flash_bytes == 1024 * 1024 - 0xC000
    assert b.sram_size == 384 * 1024


def test_every_figure_has_a_source_comment():
    for path in Path(load_board("sparkfun-edge").source).parent.glob("*.toml"):
        for line in path.read_text().splitlines():
            if "=" in line and line.split("=", 1)[0].strip() in ("hz", "size", "origin", "reserved_bytes", "stack_bytes", "heap_bytes", "supply_v", "active_ma", "baud"):
                assert "#" in line, f"{path.name}: '{line.strip()}' names no source"


def test_unknown_board_suggests_the_nearest():
    with pytest.raises(BoardError, match="Did you mean 'sparkfun-edge'"):
        load_board("sparkfun-egde")


def test_user_board_file_by_path(tmp_path):
    text = load_board("nucleo-l4r5zi").source.read_text().replace('id = "nucleo-l4r5zi"', 'id = "my-board"')
    p = tmp_path / "my-board.toml"
    p.write_text(text)
    assert load_board(str(p)).id == "my-board"


@pytest.mark.parametrize("edit, field", [
    (("size = 655_360", 'size = "big"'), "sram.size"),
    (("hz = 120_000_000", "hz = -1"), "clock.hz"),
    (('cpu = "cortex-m4"', 'cpu = "z80"'), "core.cpu"),
    (('runner = "pyocd"', ""), "flash_tool.runner"),
])
def test_bad_board_file_names_the_field(tmp_path, edit, field):
    text = load_board("nucleo-l4r5zi").source.read_text()
    assert edit[0] in text
    p = tmp_path / "bad.toml"
    p.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(BoardError, match=field.replace(".", r"\.")):
        load_board(str(p))


def test_board_file_that_is_not_toml(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("id = [unclosed\n")
    with pytest.raises(BoardError, match="not valid TOML"):
        load_board(str(p))


# --- a board file is data: every field checked, nothing in it crashes tinygen ----------------

BOARDS = Path(load_board("sparkfun-edge").source).parent


def _fields() -> dict[str, Path]:
    """Every field of the bundled board files, dotted, with a file that has it."""
    import tomllib

    found: dict[str, Path] = {}
    for path in sorted(BOARDS.glob("*.toml")):
        for table, value in tomllib.loads(path.read_text()).items():
            for key in (value if isinstance(value, dict) else {table: None}):
                found.setdefault(f"{table}.{key}" if isinstance(value, dict) else table, path)
    return found


def _with_value(path: Path, dotted: str, toml_value: str) -> str:
    """The board file's text with one field's value replaced."""
    table, _, key = dotted.rpartition(".")
    section, out = "", []
    for line in path.read_text().splitlines():
        if line.startswith("["):
            section = line.strip()[1:-1]
        elif section == table and line.split("=", 1)[0].strip() == key:
            line = f"{key} = {toml_value}"
        out.append(line)
    return "\n".join(out) + "\n"


def test_every_field_of_the_bundled_boards_is_checked():
    assert len(_fields()) >= 30


@pytest.mark.parametrize("dotted", sorted(_fields()))
@pytest.mark.parametrize("wrong", ["1979-05-27T07:32:00Z", "{ a = 1 }", "true", "[[1], [2]]", "nan"])
def test_a_wrong_type_in_any_field_is_one_error_naming_it(tmp_path, dotted, wrong):
    text = _with_value(_fields()[dotted], dotted, wrong)
    p = tmp_path / "board.toml"
    p.write_text(text)
    with pytest.raises(BoardError, match=rf"board\.toml: .*'{re.escape(dotted)}'"):
        load_board(str(p))


@pytest.mark.parametrize("table", ["core", "clock", "flash", "sram", "power", "serial", "flash_tool", "build"])
def test_a_table_that_is_a_number_is_named(tmp_path, table):
    text = load_board("nucleo-l4r5zi").source.read_text().replace(f"[{table}]", f"[{table}_was]")
    p = tmp_path / "board.toml"
    p.write_text(f"{table} = 5\n" + text)
    with pytest.raises(BoardError, match=rf"'{table}' should be a table of fields"):
        load_board(str(p))


@pytest.mark.parametrize("board_id", ["", "../../escaped", "/abs", ".hidden", "My-Board", "a b", "a" * 65, "x/y"])
def test_a_board_id_must_be_a_name(tmp_path, board_id):
    text = load_board("nucleo-l4r5zi").source.read_text().replace('id = "nucleo-l4r5zi"', f'id = "{board_id}"')
    p = tmp_path / "mine.toml"
    p.write_text(text)
    with pytest.raises(BoardError, match=r"mine\.toml: the field 'id' should be a name of lowercase letters"):
        load_board(str(p))


def test_a_board_id_that_is_a_name_is_fine(tmp_path):
    text = load_board("nucleo-l4r5zi").source.read_text().replace('id = "nucleo-l4r5zi"', 'id = "my_board-2.1"')
    p = tmp_path / "mine.toml"
    p.write_text(text)
    assert load_board(str(p)).id == "my_board-2.1"


@pytest.mark.parametrize("edit, says", [
    (('family = "stm32l4"', 'family = "../../tmp/port"'), "'family' should be a name"),
    (('name = "', 'name = "Evil\\nall:\\n\\trm -rf ~\\n#'), "'name' holds a control character"),
    (('"-mthumb"', '"$(shell rm -rf ~)"'), "'build.cflags' should be a list of compiler flags"),
    (('"-mthumb"', '"-mthumb -DX"'), "'build.cflags' should be a list of compiler flags"),
    (('"-mthumb"', "3"), "'build.cflags' should be a list of compiler flags"),
    (('tflm_target_arch = "cortex-m4+fp"', 'tflm_target_arch = "cortex-m4 $(X)"'), "'core.tflm_target_arch'"),
    (("hz = 120_000_000", "hz = 1_000_000_000_000_000_000_000_000"), "'clock.hz' should be a positive number below"),
    (("supply_v = 3.3", "supply_v = inf"), "'power.supply_v' should be a positive number"),
    (("size = 2_097_152", "size = 0x1_0000_0000"), "'flash.origin' plus 'flash.size' ends past the 4 GiB"),
    (('name = "', 'notes = 2024-05-01\nname = "'), "'notes' is a date or time"),
])
def test_values_that_would_reach_the_makefile_or_overflow_are_refused(tmp_path, edit, says):
    text = load_board("nucleo-l4r5zi").source.read_text()
    assert edit[0] in text
    p = tmp_path / "bad.toml"
    p.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(BoardError, match=re.escape(says)):
        load_board(str(p))


@pytest.mark.parametrize("make, says", [
    (lambda p: p.write_text('id = "x"\nv = ' + "[" * 5000 + "]" * 5000 + "\n"), "nests arrays or tables too deeply"),
    (lambda p: p.write_text('id = "x"\nv = ' + "{a = " * 3000 + "1" + "}" * 3000 + "\n"), "too deeply"),
    (lambda p: p.mkdir(), "is a folder, not a board file"),
    (lambda p: p.write_bytes(b'id = "caf\xe9"\n'), "is not UTF-8 text (byte 0xe9 at offset 9)"),
    (lambda p: p.write_bytes(b'id = "a"\n\x00\n'), "holds a NUL byte at offset 9"),
    (lambda p: p.write_bytes(b"#" * (2 * 1024 * 1024)), "a board file is a few kilobytes"),
    (lambda p: None, "There is no board file at"),
])
def test_a_board_file_that_cannot_be_read_is_one_error(tmp_path, make, says):
    p = tmp_path / "b.toml"
    make(p)
    with pytest.raises(BoardError, match=re.escape(says)):
        load_board(str(p))


def test_paths_the_system_rejects_are_board_errors(tmp_path):
    with pytest.raises(BoardError, match="File name too long"):
        load_board(str(tmp_path / ("a" * 300 + ".toml")))
    with pytest.raises(BoardError, match="Unknown board"):
        load_board("a" * 300)                  # no .toml: a bundled id that does not exist
    with pytest.raises(BoardError, match="not a regular file"):
        load_board("/dev/zero")
    with pytest.raises(BoardError, match="cannot be read"):
        load_board(str(tmp_path / "nul\x00.toml"))
