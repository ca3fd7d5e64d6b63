"""The TG1 line parser: unit cases and properties (hypothesis)."""

from hypothesis import example, given, settings, strategies as st

from tinygen.device.protocol import crc8, format_line, parse_line

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
values = st.one_of(st.integers(-2**31, 2**32 - 1).map(str), st.text(alphabet="0123456789abcdef", min_size=1, max_size=64))
kinds = st.sampled_from(["boot", "inf", "done", "err"])


def test_a_known_line():
    line = format_line("inf", seq=3, cycles=123456, us=2572, top=1, score_milli=-42)
    ev = parse_line(line)
    assert ev.kind == "inf" and ev.int("seq") == 3 and ev.int("score_milli") == -42
    assert line.endswith("\r\n") and line[-6:-2].startswith(" *")


def test_crc8_check_value():
    # CRC-8 (poly 0x07, init 0, no reflection): the catalogue check value for "123456789" is 0xF4
    assert crc8(b"123456789") == 0xF4


def test_what_is_not_a_line():
    for junk in ["", "\r\n", "hello world", "TG1", "TG1 inf seq=1", "TG1 inf seq=1 *zz", "TG2 inf seq=1 *00",
                 "TG1 inf seq1 *00", b"\xff\xfe\x00", "TG1 9nf a=1 *00"]:
        assert parse_line(junk) is None


@given(kinds, st.dictionaries(keys, values, max_size=8))
@example("inf", {"kind": "x"})   # once a TypeError: a field named like format_line's own parameter
def test_format_then_parse_round_trips(kind, fields):
    ev = parse_line(format_line(kind, **fields))
    assert ev is not None and ev.kind == kind and ev.fields == fields


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_garbage_never_raises(data):
    parse_line(data)
    parse_line(data.decode("latin-1"))


@given(kinds, st.dictionaries(keys, values, min_size=1, max_size=6), st.data())
def test_any_single_byte_change_is_caught(kind, fields, data):
    line = format_line(kind, **fields).encode()
    body_len = len(line) - 6  # the CRC guards everything before " *xx\r\n"
    i = data.draw(st.integers(0, body_len - 1))
    new = data.draw(st.integers(0x20, 0x7E).filter(lambda b: b != line[i]))
    corrupted = line[:i] + bytes([new]) + line[i + 1:]
    ev = parse_line(corrupted)
    # a CRC of degree 8 detects every error burst of 8 bits or fewer
    assert ev is None


def test_what_the_firmware_never_prints_is_not_a_line():
    """Checksum-valid, but not the format: a key twice, a control character, a CRC not spelled as
    two lowercase hex digits."""
    def line(body: str, check: str | None = None) -> str:
        return f"{body} *{check or format(crc8(body.encode()), '02x')}\r\n"

    assert parse_line(line("TG1 inf us=1 us=2")) is None
    assert parse_line(line("TG1 inf us=1\t")) is None
    assert parse_line(line("TG1 inf us=1\x1b[2J")) is None
    body = "TG1 inf seq=3"
    crc = crc8(body.encode())
    for spelled in (f"{crc:02X}", f" {crc:x}", f"+{crc:x}"):
        if spelled != f"{crc:02x}":
            assert parse_line(line(body, spelled)) is None, spelled
    assert parse_line(line(body)).fields == {"seq": "3"}


def test_int_fields_are_decimal_integers_only():
    ev = parse_line(format_line("inf", a="12", b="-7", c="+3", d="1_000", e="5x", f="1" * 5000, g="0012"))
    assert (ev.int("a"), ev.int("b"), ev.int("g")) == (12, -7, 12)
    assert ev.int("c") is None and ev.int("d") is None and ev.int("e") is None
    assert ev.int("f") is None and ev.int("missing", 4) == 4   # more digits than Python converts
