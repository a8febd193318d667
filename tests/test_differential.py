"""Differential testing: the interpreter against the kernel on generated programs.

Each example is a program from `gen.cases()` with a packet and initial map
contents. When the verifier accepts it, BPF_PROG_TEST_RUN runs it once and
the interpreter runs it on the same input; r0 (truncated to the u32
BPF_PROG_TEST_RUN reports), the output packet and every map's contents must
agree. A mismatch fails with a reproducer (hypothesis shrinks it first): the
program in pseudo-C, the packet, the maps, both results.

EPASS_DIFF_EXAMPLES sets the number of examples per program type (default
150; CI runs more). See docs/differential.md.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from gen import Case, FuncAddr, GotoTo, JumpTo, Label, assemble, cases
from hypothesis import HealthCheck, given, settings
from kernel_run import KernelResult, run_in_kernel

from epass.isa import (
    HELPER_IDS,
    Alu,
    AluOp,
    Atomic,
    AtomicOp,
    Call,
    CallKind,
    Exit,
    Insn,
    JmpOp,
    Load,
    LoadImm64,
    PseudoKind,
    format_program,
    parse_program,
)
from epass.semantics.interp import Environment, MapSpec, RunResult, run
from epass.uapi import MapType, ProgType

EXAMPLES = int(os.environ.get("EPASS_DIFF_EXAMPLES", "150"))
MIN_ACCEPTED = 0.8  # compared share; below it the generator drifted from what the kernel takes
U32 = 0xFFFFFFFF


@dataclass
class Tally:
    """What happened to the examples of one run."""

    examples: int = 0
    accepted: int = 0
    not_run: int = 0  # accepted, but BPF_PROG_TEST_RUN refused the input
    rejections: Counter[str] = field(default_factory=Counter)

    @property
    def compared(self) -> int:
        return self.accepted - self.not_run

    def summary(self) -> str:
        lines = [f"{self.examples} examples: {self.compared} compared, "
                 f"{self.examples - self.accepted} rejected by the verifier, "
                 f"{self.not_run} refused by BPF_PROG_TEST_RUN"]
        lines += [f"  {n} x {reason}" for reason, n in self.rejections.most_common(8)]
        return "\n".join(lines)


def interpret(case: Case) -> RunResult:
    return run(case.insns, Environment(prog_type=case.prog_type, packet=case.packet,
                                       maps=case.maps))


def differences(kernel: KernelResult, result: RunResult) -> list[str]:
    """How the interpreter's run differs from the kernel's: empty when they agree."""
    if result.fault is not None or result.r0 is None:
        return [f"the interpreter faulted: {result.fault}"]
    out = []
    if result.uninit_reads:
        out.append(f"the interpreter read uninitialized stack: {result.uninit_reads}")
    if result.r0 & U32 != kernel.retval:
        out.append(f"r0: interpreter 0x{result.r0 & U32:x} (full 0x{result.r0:x}), "
                   f"kernel 0x{kernel.retval:x}")
    if result.packet != kernel.packet:
        out.append(f"packet:\n  interpreter {result.packet.hex()}\n  kernel      "
                   f"{kernel.packet.hex()}")
    for name, theirs in kernel.maps.items():
        ours = result.maps.get(name)
        if ours != theirs:
            out.append(f"map {name}:\n  interpreter {_contents(ours or {})}\n  kernel      "
                       f"{_contents(theirs)}")
    return out


def _contents(entries: dict[bytes, bytes]) -> str:
    return "{" + ", ".join(f"{k.hex()}: {v.hex()}" for k, v in sorted(entries.items())) + "}"


def check(case: Case, tally: Tally | None = None) -> None:
    """Run `case` both ways; raise AssertionError with a reproducer when they differ."""
    kernel = run_in_kernel(case.insns, case.maps, case.packet, case.prog_type)
    if tally is not None:
        tally.examples += 1
        tally.accepted += kernel.accepted
        tally.not_run += kernel.run_error is not None
        if not kernel.accepted:
            tally.rejections[re.sub(r"\d+", "N", kernel.reason)] += 1
    if not kernel.accepted or kernel.run_error is not None:
        return
    diffs = differences(kernel, interpret(case))
    if diffs:
        raise AssertionError("the interpreter disagrees with the kernel\n" + case.describe()
                             + "\n" + "\n".join(diffs))


def run_hypothesis(test: Any, prog_type: ProgType, examples: int) -> None:
    """Run `test(case)` on `examples` generated cases of `prog_type`."""
    # one database entry per program type (hypothesis' own hook for parametrized tests),
    # so a saved failure is replayed first by the run it came from
    test._hypothesis_internal_add_digest = prog_type.name.encode()
    settings(max_examples=examples, deadline=None, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                    HealthCheck.large_base_example])(
        given(case=cases(prog_type))(test))()


def differential(prog_type: ProgType, examples: int) -> Tally:
    tally = Tally()

    def one(case: Case) -> None:
        check(case, tally)

    run_hypothesis(one, prog_type, examples)
    print(f"\n{prog_type.name}: {tally.summary()}")
    assert tally.compared >= MIN_ACCEPTED * tally.examples, tally.summary()
    return tally


@pytest.mark.parametrize("prog_type", [ProgType.XDP, ProgType.SCHED_CLS], ids=["xdp", "tc"])
def test_interpreter_agrees_with_the_kernel(bpf_permitted, prog_type):
    differential(prog_type, EXAMPLES)


# --- what the generator promises, without a kernel ----------------------------------


@pytest.mark.parametrize("prog_type", [ProgType.XDP, ProgType.SCHED_CLS], ids=["xdp", "tc"])
def test_generated_programs_run_cleanly_on_the_interpreter(prog_type):
    """No faults and no reads of unwritten stack: the generator keeps its own rules."""

    def one(case: Case) -> None:
        result = interpret(case)
        assert result.fault is None, case.describe()
        assert result.uninit_reads == [], case.describe()

    run_hypothesis(one, prog_type, 50)


def test_assemble_resolves_labels():
    end = Label(1)
    insns = assemble([JumpTo(JmpOp.EQ, 1, end, imm=0), LoadImm64(0, 1 << 40), GotoTo(end),
                      Alu(AluOp.MOV, 0, imm=1), end, Exit()])
    assert format_program(insns) == (
        "0: if r1 == 0x0 goto pc+4\n1: r0 = 0x10000000000 ll\n3: goto pc+1\n4: r0 = 1\n"
        "5: exit\n")


# --- the bugs the differential test found, as fixed cases ---------------------------

ARR = MapSpec("arr", MapType.ARRAY, 4, 16, 4)
HASH = MapSpec("hash", MapType.HASH, 4, 8, 4)
GLOB = MapSpec("glob", MapType.ARRAY, 4, 32, 1)
PACKET = bytes(range(20))


def _update_array(key: int, flags: int) -> list[Insn]:
    return parse_program(
        f"*(u32 *)(r10 -4) = {key}\n*(u64 *)(r10 -24) = 0\n*(u64 *)(r10 -16) = 0\n"
        "r1 = map[idx:0] ll\nr2 = r10\nr2 += -4\nr3 = r10\nr3 += -24\n"
        f"r4 = {flags}\ncall bpf_map_update_elem\nexit\n")


def _adjust(*steps: tuple[str, str]) -> list[Insn]:
    text = "r6 = r1\n" + "".join(f"{delta}\nr1 = r6\ncall bpf_xdp_adjust_{helper}\n"
                                 for helper, delta in steps)
    return parse_program(text + "exit\n")


def _loop_high_half(nr: int) -> list[Insn]:
    """r0 = bpf_loop(nr, cb, NULL, 0) >> 32, with a callback that returns 0."""
    callback = Label(1)
    return assemble([LoadImm64(1, nr), FuncAddr(2, callback), Alu(AluOp.MOV, 3, imm=0),
                     Alu(AluOp.MOV, 4, imm=0), Call(CallKind.HELPER, HELPER_IDS["bpf_loop"]),
                     Alu(AluOp.RSH, 0, imm=32), Exit(),
                     callback, Alu(AluOp.MOV, 0, imm=0), Exit()])


def _nested_for_each() -> list[Insn]:
    """for_each(arr) whose callback runs for_each(arr) again, summing the inner keys into
    glob; the outer callback stops after one element: r0 = 0 + 1 + 2 + 3."""
    outer, inner = Label(1), Label(2)

    def for_each(callback: Label) -> list:
        return [LoadImm64(1, 0, PseudoKind.MAP_IDX), FuncAddr(2, callback),
                Alu(AluOp.MOV, 3, imm=0), Alu(AluOp.MOV, 4, imm=0),
                Call(CallKind.HELPER, HELPER_IDS["bpf_for_each_map_elem"])]

    glob = LoadImm64(1, 2, PseudoKind.MAP_IDX_VALUE, 24)
    return assemble([*for_each(outer), glob, Load(8, 0, 1, 0), Exit(),
                     outer, *for_each(inner), Alu(AluOp.MOV, 0, imm=1), Exit(),
                     inner, glob, Load(4, 3, 2, 0), Atomic(AtomicOp.ADD, 8, 1, 3, 0),
                     Alu(AluOp.MOV, 0, imm=0), Exit()])


def _fixed(name: str, insns: list[Insn], r0: int, maps: list[MapSpec] | None = None,
           packet: bytes = PACKET, prog_type: ProgType = ProgType.XDP,
           out: bytes | None = None) -> Any:
    case = Case(prog_type, insns, packet, maps or [])
    return pytest.param(case, r0 & U32, packet if out is None else out, id=name)


FIXED = [
    # array_map_update_elem checks the index before BPF_NOEXIST, and BPF_F_LOCK last
    _fixed("array-update-noexist-lock", _update_array(1, 5), -17, [ARR]),
    _fixed("array-update-bad-key-lock", _update_array(7, 4), -7, [ARR]),
    # adjust_head keeps sizeof(struct xdp_frame) = 40 bytes of the 256-byte headroom
    _fixed("adjust-head-217", _adjust(("head", "r2 = -217")), -22),
    _fixed("adjust-head-216", _adjust(("head", "r2 = -216")), 0, out=bytes(216) + PACKET),
    # the helpers take an int: `w2 = -16` makes r2 0xfffffff0, which they read as -16
    _fixed("adjust-head-w2", _adjust(("head", "w2 = -16")), 0, out=bytes(16) + PACKET),
    _fixed("adjust-tail-w2", _adjust(("tail", "w2 = -4")), 0, out=PACKET[:16]),
    # the frame is a page: data_end stays 320 bytes (skb_shared_info) short of its end
    _fixed("adjust-tail-3520", _adjust(("tail", "r2 = 3500")), 0, out=PACKET + bytes(3500)),
    _fixed("adjust-tail-3521", _adjust(("tail", "r2 = 3501")), -22),
    # growing the tail clears what comes back
    _fixed("adjust-tail-regrow", _adjust(("tail", "r2 = -4"), ("tail", "r2 = 4")), 0,
           out=PACKET[:16] + bytes(4)),
    # the inlined bpf_loop compares all 64 bits of nr; -E2BIG is `w0 = -7`, zero-extended
    _fixed("bpf-loop-2**32+3", _loop_high_half((1 << 32) | 3), 0),
    # each nesting level of for_each_map_elem has its own key
    _fixed("nested-for-each", _nested_for_each(), 6, [ARR, HASH, GLOB]),
    # BPF_PROG_TEST_RUN's XDP frame comes from loopback (ifindex 1), rx queue 0
    _fixed("xdp-ingress-ifindex", parse_program("r0 = *(u32 *)(r1 +12)\nexit\n"), 1),
    # tc_index and tc_classid are __u16 in the kernel: a u32 store keeps 16 bits
    *(_fixed(f"tc-{name}-truncated", parse_program(
        f"r2 = 0x7ffffffe\n*(u32 *)(r1 +{off}) = r2\nr0 = *(u32 *)(r1 +{off})\nexit\n"),
        0xFFFE, packet=bytes(14), prog_type=ProgType.SCHED_CLS)
      for name, off in (("tc_index", 44), ("tc_classid", 72))),
    # bpf_skb_load_bytes takes a u32 offset
    _fixed("tc-load-bytes-u32-offset", parse_program(
        "r2 = 0x100000010 ll\nr3 = r10\nr3 += -8\nr4 = 4\ncall bpf_skb_load_bytes\n"
        "r0 = *(u32 *)(r10 -8)\nexit\n"), 0x13121110, packet=bytes(16) + bytes(range(16, 40)),
        prog_type=ProgType.SCHED_CLS),
    # LD_ABS/LD_IND: an int offset; SKF_LL_OFF / SKF_NET_OFF address the mac / network header
    *(_fixed(f"tc-ld-abs-{name}", parse_program(f"r6 = r1\n{load}\nr0 += 1\nexit\n"), r0,
             packet=bytes(range(1, 35)), prog_type=ProgType.SCHED_CLS)
      for name, load, r0 in (
          ("ll-off", "r0 = *(u32 *)skb[-2097152]", 0x01020305),
          ("net-off", "r0 = *(u8 *)skb[-1048576]", 0x10),
          ("net-off-past-end", "r0 = *(u8 *)skb[-1048556]", 0),
          ("below-ll-off", "r0 = *(u8 *)skb[-2097153]", 0),
          ("ind-2**32+2", "r7 = 0x100000000 ll\nr0 = *(u8 *)skb[r7 + 2]", 4))),
    # tc: len, pkt_type (0 host, 2 multicast, 3 other host: loopback's address is all-zero),
    # protocol (the __be16 in the low half), ifindex, as eth_type_trans() on loopback sets them
    *(_fixed(f"tc-{name}-{field}", parse_program(f"r0 = *(u32 *)(r1 +{off})\nexit\n"), value,
             packet=packet, prog_type=ProgType.SCHED_CLS)
      for name, packet, values in (
          ("ipv4-host", bytes(12) + b"\x08\x00" + bytes(20), (34, 0, 0x0008, 1)),
          ("ipv6-bcast", b"\xff" * 6 + bytes(6) + b"\x86\xdd" + bytes(40), (54, 2, 0xDD86, 1)),
          ("raw-802.3", b"\x02" + bytes(11) + b"\x01\x00\xff\xff" + bytes(4),
           (20, 3, 0x0100, 1)),
          ("802.2", b"\x02" + bytes(11) + b"\x01\x00" + bytes(6), (20, 3, 0x0400, 1)))
      for (field, off), value in zip((("len", 0), ("pkt_type", 4), ("protocol", 16),
                                      ("ifindex", 40)), values, strict=True)),
]


@pytest.mark.parametrize("case, r0, packet", FIXED)
def test_fixed_case_on_the_interpreter(case, r0, packet):
    result = interpret(case)
    assert (result.r0 & U32, result.packet) == (r0, packet), case.describe()


@pytest.mark.parametrize("case, r0, packet", FIXED)
def test_fixed_case_in_the_kernel(bpf_permitted, case, r0, packet):
    kernel = run_in_kernel(case.insns, case.maps, case.packet, case.prog_type)
    assert kernel.accepted, kernel.log
    assert (kernel.retval, kernel.packet) == (r0, packet), case.describe()
