"""Patch instructions with the values CO-RE relocations resolve to.

`core.py` computes what a relocation's value is locally and in the running
kernel; this module writes the kernel's value into the instruction that
carries it -- the `off` of a load/store, the immediate of an ALU op or an
lddw -- after checking the instruction holds the local value, as libbpf does.
"""

from __future__ import annotations

from dataclasses import replace

from epass.errors import BTFError
from epass.isa import Alu, Atomic, Call, CallKind, Insn, Load, LoadImm64, Store
from epass.obj.btf import Btf
from epass.obj.btf_ext import CoreRelo
from epass.obj.core import resolve_core_relo

# libbpf's marker: a call to this helper id means "CO-RE relocation failed here"
POISON_HELPER_ID = 0xBAD2310


def apply_core_relos(insns: dict[int, Insn], relos: list[CoreRelo], local: Btf,
                     target: Btf) -> int:
    """Patch `insns` (slot -> instruction) in place; returns how many were patched.

    A field or enum value the kernel lacks poisons its instruction, as libbpf
    does: the verifier rejects it only if it is reachable, so code guarded by
    bpf_core_field_exists() still loads.
    """
    for relo in relos:
        insn = insns.get(relo.insn)
        if insn is None:
            raise BTFError(f"CO-RE relocation {relo.kind.name} points inside an instruction",
                           index=relo.insn)
        result = resolve_core_relo(relo, local, target, poison_missing=True)
        if result.poison:
            poison = Call(CallKind.HELPER, POISON_HELPER_ID)
            insns[relo.insn] = poison
            if isinstance(insn, LoadImm64):
                insns[relo.insn + 1] = poison  # keep the slot layout
            continue
        insns[relo.insn] = _patch(insn, relo, result.local_value, result.target_value,
                                  result.validate)
        if (result.local_size != result.target_size and isinstance(insn, Load | Store)
                and result.target_size):
            if not result.resize_ok:
                raise BTFError(f"CO-RE relocation {relo.kind.name}: field size changed from "
                               f"{result.local_size} to {result.target_size}", index=relo.insn)
            insns[relo.insn] = replace(insns[relo.insn], size=result.target_size)
    return len(relos)


def _patch(insn: Insn, relo: CoreRelo, local: int, value: int, validate: bool) -> Insn:
    def check(current: int) -> None:
        if validate and current != local:
            raise BTFError(f"CO-RE relocation {relo.kind.name}: instruction holds {current}, "
                           f"expected {local}", index=relo.insn)

    match insn:
        case Load() | Store() | Atomic():
            check(insn.off)
            if not -(1 << 15) <= value < (1 << 15):
                raise BTFError(f"CO-RE relocation {relo.kind.name}: offset {value} does not "
                               "fit in 16 bits", index=relo.insn)
            return replace(insn, off=value)
        case Alu(src=None):
            check(insn.imm)
            return replace(insn, imm=value)
        case LoadImm64():
            check(insn.imm)
            return replace(insn, imm=value & 0xFFFFFFFFFFFFFFFF)
    raise BTFError(f"CO-RE relocation {relo.kind.name} on an instruction that carries no "
                   "immediate or offset", index=relo.insn)
