"""Run one function of a linked Cortex-M image, instruction by instruction, and record the stores it
makes: how the tests see what a port's GPIO code does to its registers on boards no emulator models
(QEMU has no STM32L4, STM32F7, nRF52840, RP2040 or Apollo3 machine). capstone decodes; the small
set of Thumb instructions short register-poking functions compile to is executed here, and anything
else stops the run with its name, so a function this cannot follow fails loudly instead of passing.

Memory outside the image reads as the `reset` values given (else 0) and then as what was stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

_RETURN = 0xFFFF_FFF0   # lr on entry: reaching it ends the run
_STACK = 0x7FFF_0000
_MASK = 0xFFFF_FFFF


@dataclass
class Trace:
    stores: list[tuple[int, int]] = field(default_factory=list)     # (address, value) in order
    calls: list[tuple[str, list[int]]] = field(default_factory=list)  # (callee, r0-r3)
    memory: dict[int, int] = field(default_factory=dict)             # every address's last value


class Image:
    def __init__(self, elf: Path):
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        with open(elf, "rb") as f:
            e = ELFFile(f)
            self.segments = [(s["sh_addr"], s.data()) for s in e.iter_sections()
                             if s["sh_flags"] & 2 and s["sh_type"] == "SHT_PROGBITS"]   # SHF_ALLOC
            self.symbols: dict[str, int] = {}
            for s in e.iter_sections():
                if isinstance(s, SymbolTableSection):
                    for sym in s.iter_symbols():
                        if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                            self.symbols[sym.name] = sym["st_value"] & ~1
        self.names = {a: n for n, a in self.symbols.items()}

    def read(self, addr: int, n: int) -> bytes | None:
        for base, data in self.segments:
            if base <= addr and addr + n <= base + len(data):
                return data[addr - base:addr - base + n]
        return None

    def run(self, function: str, *args: int, reset: dict[int, int] | None = None, status: dict[int, int] | None = None,
            steps: int = 500) -> Trace:
        """`reset`: what a register holds before the function stores to it. `status`: what reading a
        register always gives, whatever was stored (a ready flag the hardware sets)."""
        status = status or {}
        import capstone
        from capstone import arm

        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        md.detail = True
        t = Trace(memory=dict(reset or {}))
        r = {f"r{i}": 0 for i in range(13)} | {"sp": _STACK, "lr": _RETURN}
        for i, a in enumerate(args):
            r[f"r{i}"] = a & _MASK
        flags = {"z": False, "n": False, "c": False}
        pc = self.symbols[function]
        it_block: list[int] = []   # conditions of the instructions an IT instruction covers, in order

        def load(addr: int, size: int) -> int:
            b = self.read(addr, size)
            if b is not None:
                return int.from_bytes(b, "little")
            return status[addr] if addr in status else t.memory.get(addr, 0)

        def store(addr: int, value: int, size: int) -> None:
            value &= (1 << (8 * size)) - 1
            t.memory[addr] = value
            if addr < _STACK - 0x1000 or addr > _STACK:
                t.stores.append((addr, value))

        def holds(cc: int) -> bool:
            table = {arm.ARM_CC_AL: True, arm.ARM_CC_EQ: flags["z"], arm.ARM_CC_NE: not flags["z"],
                     arm.ARM_CC_HS: flags["c"], arm.ARM_CC_LO: not flags["c"],
                     arm.ARM_CC_MI: flags["n"], arm.ARM_CC_PL: not flags["n"]}
            if cc in (arm.ARM_CC_INVALID,):
                return True
            if cc not in table:
                raise NotImplementedError(f"condition code {cc}")
            return table[cc]

        def setnz(v: int) -> None:
            flags["z"], flags["n"] = v == 0, bool(v >> 31)

        for _ in range(steps):
            if pc == _RETURN:
                return t
            code = self.read(pc, 4) or self.read(pc, 2)
            insn = next(md.disasm(code, pc, 1))
            nxt = pc + insn.size
            m = insn.mnemonic.split(".")[0]
            ops = insn.operands

            def val(o) -> int:
                if o.type == arm.ARM_OP_REG:
                    return r[insn.reg_name(o.reg)] if insn.reg_name(o.reg) != "pc" else (pc + 4)
                if o.type == arm.ARM_OP_IMM:
                    return o.imm & _MASK
                raise NotImplementedError(f"operand of {insn.mnemonic} {insn.op_str}")

            def dst() -> str:
                return insn.reg_name(ops[0].reg)

            def addr_of(o) -> int:
                base = insn.reg_name(o.mem.base)
                b = ((pc + 4) & ~3) if base == "pc" else r[base]
                return (b + o.mem.disp + (r[insn.reg_name(o.mem.index)] if o.mem.index else 0)) & _MASK

            # Decoded one at a time, capstone cannot know an instruction sits in an IT block: the
            # block's conditions are kept here (ARM's codes pair up: EQ 1 / NE 2, HS 3 / LO 4, ...).
            cc = it_block.pop(0) if it_block else insn.cc
            if m.startswith("it"):
                first = insn.cc
                it_block = [first] + [first if x == "t" else (first + 1 if first % 2 else first - 1) for x in m[2:]]
                pc = nxt
                continue
            if m == "nop":
                pc = nxt
                continue
            if not holds(cc) and m not in ("cbz", "cbnz"):
                pc = nxt
                continue
            sets = insn.update_flags
            if m in ("ldr", "ldrb", "ldrh", "str", "strb", "strh"):
                size = {"b": 1, "h": 2}.get(m[3:], 4)
                a = addr_of(ops[1])
                if m.startswith("ldr"):
                    r[dst()] = load(a, size)
                else:
                    store(a, r[dst()], size)
            elif m in ("mov", "movs", "movw", "mvn", "mvns"):
                v = val(ops[1]) if len(ops) == 2 else 0
                v = (~v & _MASK) if m.startswith("mvn") else v
                r[dst()] = v
                if sets:
                    setnz(v)
            elif m == "movt":
                r[dst()] = (r[dst()] & 0xFFFF) | (val(ops[1]) << 16)
            elif m in ("orr", "orrs", "bic", "bics", "and", "ands", "eor", "eors", "add", "adds", "sub", "subs",
                       "lsl", "lsls", "lsr", "lsrs"):
                a, b = (val(ops[1]), val(ops[2])) if len(ops) == 3 else (r[dst()], val(ops[1]))
                op = m.rstrip("s")
                v = {"orr": a | b, "bic": a & ~b, "and": a & b, "eor": a ^ b, "add": a + b, "sub": a - b,
                     "lsl": a << b, "lsr": a >> b}[op] & _MASK
                if sets:
                    setnz(v)
                    if op == "sub":
                        flags["c"] = a >= b
                r[dst()] = v
            elif m in ("cmp", "cmn"):
                a, b = val(ops[0]), val(ops[1])
                v = (a - b if m == "cmp" else a + b) & _MASK
                setnz(v)
                flags["c"] = a >= b if m == "cmp" else (a + b) > _MASK
            elif m in ("cbz", "cbnz"):
                zero = r[dst()] == 0
                if zero == (m == "cbz"):
                    nxt = ops[1].imm
            elif m == "push":
                for o in reversed(ops):
                    r["sp"] -= 4
                    store(r["sp"], r[insn.reg_name(o.reg)], 4)
            elif m == "pop":
                for o in ops:
                    v = load(r["sp"], 4)
                    r["sp"] += 4
                    if insn.reg_name(o.reg) == "pc":
                        nxt = v & ~1
                    else:
                        r[insn.reg_name(o.reg)] = v
            elif m == "bx":
                nxt = r[dst()] & ~1
            elif m in ("bl", "b") or (m.startswith("b") and len(m) == 3):   # b, bl, beq, bne, ...
                target = ops[0].imm
                callee = self.names.get(target)
                if m == "bl" or (callee and callee != function and m == "b"):
                    t.calls.append((callee or hex(target), [r[f"r{i}"] for i in range(4)]))
                    nxt = nxt if m == "bl" else r["lr"]
                else:
                    nxt = target
            else:
                raise NotImplementedError(f"{function}: {insn.mnemonic} {insn.op_str} at {pc:#x}")
            pc = nxt
        raise RuntimeError(f"{function} did not return within {steps} instructions")
