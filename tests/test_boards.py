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
