"""alignment: split misaligned stack accesses into naturally aligned ones.

Answers "misaligned stack access off V+O+I size N": the verifier requires every
stack access to be aligned to its size (its spill tracking works on 8-byte slots),
whatever the JIT could do. Packed structs on the stack and word-wise copies
(`*(u32 *)(key + 2) = ...`) make clang emit such accesses.

The rewrite replaces an access of N bytes at a misaligned stack offset by pieces
of the largest size that is aligned at each position (1, 2 or 4 bytes, 8 when
possible), in ascending address order:
- a store of value v: piece k stores the low bytes of `v >> 8*k`, (immediates:
  the matching bytes of the constant);
- a load: the pieces are loaded zero-extended, shifted to their byte position and
  or-ed together; a sign-extending load sign-extends the result with lsh/arsh.
eBPF is little-endian, so the pieces write and read exactly the same bytes with the
same values: the rewrite changes no behaviour on any input, and Z3 proves the
programs EQUIVALENT from its byte-wise memory model.

Every misaligned stack access of the program is split at once (first candidate),
else only the rejected one. Stack pointers held in registers (`r2 = r10 - 16`)
count with the offset the verifier knew for them; a pointer value cannot be split
(shifting a pointer is refused), so stores of non-scalars are left alone.
"""

from __future__ import annotations

from epass.ir import model as ir
from epass.ir.builder import Builder
from epass.isa import insn as bc
from epass.isa.opcodes import AluOp
from epass.kernel.verifier_log import ErrorClass
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register


def pieces(addr: int, size: int) -> list[tuple[int, int]]:
    """(position, size) of aligned pieces covering `size` bytes starting at `addr`."""
    out, pos = [], 0
    while pos < size:
        piece = next(s for s in (8, 4, 2, 1) if s <= size - pos and (addr + pos) % s == 0)
        out.append((pos, piece))
        pos += piece
    return out


def stack_address(site: Site, inst: ir.Load | ir.Store) -> int | None:
    """The access's offset from the frame pointer, when the verifier knew it exactly."""
    if inst.base is ir.FP:
        return inst.off
    code = site.bytecode(inst)
    if isinstance(code, bc.Load):
        reg = site.reg_at(inst, code.src)
    elif isinstance(code, bc.Store):
        reg = site.reg_at(inst, code.dst)
    else:
        return None
    if reg is None or reg.type != "fp" or not reg.is_const or reg.frameno is not None:
        return None
    return reg.off + reg.var_off_value + inst.off


def splittable(site: Site, inst: ir.Inst) -> bool:
    """A misaligned load or store of the stack whose value can be split."""
    if not isinstance(inst, ir.Load | ir.Store) or inst.origin is None:
        return False
    addr = stack_address(site, inst)
    if addr is None or addr % inst.size == 0:
        return False
    if isinstance(inst, ir.Store) and isinstance(inst.value, ir.Value):
        code = site.bytecode(inst)
        value = site.reg_at(inst, code.src) if isinstance(code, bc.Store) and \
            code.src is not None else None
        return value is None or value.is_scalar  # unknown: let the verifier judge
    return True


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def split(inst: ir.Load | ir.Store, addr: int) -> None:
    b = Builder.before(inst)
    parts = pieces(addr, inst.size)
    if isinstance(inst, ir.Store):
        for pos, size in parts:
            value: ir.Operand
            if isinstance(inst.value, ir.Value):
                value = inst.value if pos == 0 else b.alu(AluOp.RSH, inst.value, 8 * pos)
            else:  # an immediate: sign-extended to 64 bits by the store, as in the original
                value = _signed(inst.value >> (8 * pos), 8 * min(size, 4))
            b.store(size, inst.base, inst.off + pos, value)
        inst.erase()
        return
    assert inst.result is not None
    result: ir.Value | None = None
    for pos, size in parts:
        part = b.load(size, inst.base, inst.off + pos)
        if pos:
            part = b.alu(AluOp.LSH, part, 8 * pos)
        result = part if result is None else b.alu(AluOp.OR, result, part)
    assert result is not None
    if inst.signed:
        shift = 64 - 8 * inst.size
        result = b.alu(AluOp.ARSH, b.alu(AluOp.LSH, result, shift), shift)
    inst.result.replace_all_uses(result)
    inst.erase()


def propose(site: Site) -> list[Candidate]:
    if not splittable(site, site.inst):
        return []
    targets = {i.origin: stack_address(site, i) for f in site.module.functions
               for i in f.instructions() if splittable(site, i)}

    def splitter(origins: dict[int | None, int | None]) -> Candidate:
        def apply(s: Site) -> None:
            found = [i for f in s.module.functions for i in f.instructions()
                     if isinstance(i, ir.Load | ir.Store) and i.origin in origins]
            for inst in found:
                addr = origins[inst.origin]
                assert addr is not None
                split(inst, addr)
        what = f"{len(origins)} misaligned stack accesses" if len(origins) > 1 else \
            f"the misaligned stack access at insn {site.inst.origin}"
        return Candidate(f"split {what} into aligned pieces", apply)

    candidates = [splitter(targets)]
    if len(targets) > 1:
        candidates.append(splitter({site.inst.origin: targets[site.inst.origin]}))
    return candidates


register(Strategy(
    name="alignment",
    classes=frozenset({ErrorClass.MISALIGNED_STACK}),
    description="split a misaligned stack access into naturally aligned pieces",
    propose=propose,
))
