"""`epass run`: a program on the interpreter and, with --kernel, under BPF_PROG_TEST_RUN."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from epass.commands.read import program_header
from epass.errors import EpassError, KernelError
from epass.isa import Insn, LoadImm64, PseudoKind, slot_indices
from epass.obj.model import BpfObject, MapOrigin, Program
from epass.semantics import step as st
from epass.semantics.interp import Environment, MapSpec, RunResult, StepLimit, run
from epass.semantics.packets import sample_packet
from epass.semantics.testrun import data_out, program_input
from epass.uapi import ProgType

if TYPE_CHECKING:  # the kernel modules load only when a command needs them
    from epass.kernel.loader import LoadedObject
    from epass.kernel.syscall import TestRunResult

# program types BPF_PROG_TEST_RUN runs with a packet
TEST_RUN_PACKET_TYPES = {ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                         ProgType.SOCKET_FILTER, ProgType.CGROUP_SKB, ProgType.LWT_IN,
                         ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.FLOW_DISSECTOR}
RETVAL_MASK = 0xFFFFFFFF  # BPF_PROG_TEST_RUN reports a u32
ETH_HLEN = 14


def interpreter_inputs(obj: BpfObject, program: Program) -> tuple[list[Insn], list[MapSpec]]:
    """The program with map references as map indices, and its maps with initial contents."""
    index = {m.name: i for i, m in enumerate(obj.maps)}
    insns = list(program.insns)
    position = {slot: pos for pos, slot in enumerate(slot_indices(insns))}
    for ref in program.map_refs:
        pos = position[ref.insn]
        insn = insns[pos]
        assert isinstance(insn, LoadImm64)
        kind = PseudoKind.MAP_IDX_VALUE if ref.value else PseudoKind.MAP_IDX
        insns[pos] = replace(insn, imm=index[ref.map], kind=kind, aux=ref.offset)
    specs = []
    for m in obj.maps:
        contents = {}
        if m.origin == MapOrigin.DATA and m.initial is not None:
            contents = {(0).to_bytes(4, "little"): m.initial}
        specs.append(MapSpec(m.name, m.type, m.key_size, m.value_size, m.max_entries, contents))
    return insns, specs


def _hexmap(maps: dict[str, dict[bytes, bytes]]) -> dict[str, dict[str, str]]:
    return {name: {k.hex(): v.hex() for k, v in entries.items()} for name, entries in maps.items()}


def parse_stubs(specs: tuple[str, ...] | list[str]) -> dict[str, int]:
    """`name=value` pairs (value in any base Python reads) for helpers to stub."""
    from epass.isa import HELPER_IDS

    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not name.startswith("bpf_"):
            name = "bpf_" + name
        if not sep or name not in HELPER_IDS:
            raise EpassError(f"--stub {spec!r}: expected HELPER=VALUE with a known helper name")
        try:
            out[name] = int(value.strip(), 0) & 0xFFFFFFFFFFFFFFFF
        except ValueError:
            raise EpassError(f"--stub {spec!r}: {value.strip()!r} is not a number") from None
    return out


def interpret(obj: BpfObject, program: Program, packet: bytes,
              ctx: bytes | None, stubs: dict[str, int] | None = None,
              unwritten: int | None = None) -> RunResult:
    """Run on the interpreter as BPF_PROG_TEST_RUN would run it (see semantics/testrun.py).
    `unwritten`: what a read of a never-written register gives (None: a fault)."""
    insns, maps = interpreter_inputs(obj, program)
    kind = program.kind
    prog_type = kind.prog_type if kind else None
    view = program_input(prog_type, packet, ctx)
    env = Environment(prog_type=prog_type, packet=view.packet, ctx=view.ctx, maps=maps,
                      stubs={name: (lambda it, index, v=v: v) for name, v in (stubs or {}).items()},
                      unwritten_default=unwritten)
    try:
        result = run(insns, env)
    except (st.Unsupported, StepLimit) as e:
        raise EpassError(str(e), file=obj.path, section=program.section) from None
    return replace(result, packet=data_out(view, result.packet))


def _interpreter_json(result: RunResult) -> dict[str, Any]:
    return {
        "r0": result.r0,
        "packet": result.packet.hex(),
        "executed": result.executed,
        "fault": str(result.fault) if result.fault else None,
        "uninit_reads": [{"insn": e.index, "region": e.region, "offset": e.offset,
                          "size": e.size} for e in result.uninit_reads],
        "maps": _hexmap(result.maps),
        "helper_calls": [{"helper": name, "args": list(args)}
                         for name, args in result.helper_calls],
        "output": [o.hex() for o in result.output],
    }


def on_kernel(obj: BpfObject, program: Program, packet: bytes,
              ctx: bytes | None) -> dict[str, Any]:
    """Load the object's maps and the program, run it once on CPU 0, read the maps back."""
    from epass.commands.verify import load_report, require_bpf
    from epass.kernel.loader import open_object

    require_bpf()
    kind = program.kind
    if kind is None or kind.prog_type not in TEST_RUN_PACKET_TYPES:
        name = kind.prog_type.name.lower() if kind else "unknown"
        raise KernelError(f"BPF_PROG_TEST_RUN cannot run {name} programs with a packet; "
                          "run without --kernel", file=obj.path, section=program.section)
    try:
        loaded = open_object(obj)
    except EpassError as e:
        raise e.at(file=obj.path) from None
    with loaded:
        load = loaded.load_program(program)
        if not load.accepted:
            return {"accepted": False, "verdict": load_report(load, with_log=False)}
        result = test_run_on_cpu0(obj, program, load.fd, packet, ctx)
        maps = read_maps(obj, loaded)
    return {"accepted": True, "r0": result.retval, "packet": result.data_out.hex(),
            "duration_ns": result.duration_ns, "maps": maps}


def test_run_on_cpu0(obj: BpfObject, program: Program, fd: int, packet: bytes,
                     ctx: bytes | None) -> TestRunResult:
    """One BPF_PROG_TEST_RUN on CPU 0 (where per-CPU map values are read back)."""
    from epass.kernel import syscall

    affinity = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {0})
    except OSError as e:
        raise KernelError(f"cannot run on CPU 0 (per-CPU maps are read there): "
                          f"{e.strerror}", file=obj.path) from None
    try:
        return syscall.prog_test_run(fd, data_in=packet, ctx_in=ctx,
                                     data_size_out=len(packet) + 4096)
    except syscall.BpfError as e:
        why = " (packets must hold at least an Ethernet header, 14 bytes)" \
            if len(packet) < ETH_HLEN else ""
        raise KernelError(f"BPF_PROG_TEST_RUN refused the input: {e.message}{why}",
                          file=obj.path, section=program.section) from None
    finally:
        os.sched_setaffinity(0, affinity)


def read_maps(obj: BpfObject, loaded: LoadedObject) -> dict[str, dict[str, str]]:
    """Every listable map's contents (CPU 0's for per-CPU maps), as hex."""
    from epass.kernel.snapshot import map_contents

    maps = {}
    for m in obj.maps:
        contents = map_contents(loaded.map_fds[m.name], m.type, m.key_size, m.value_size)
        if contents is not None:
            maps[m.name] = contents
    return _hexmap(maps)


def differences(interp: dict[str, Any], kernel: dict[str, Any]) -> list[str]:
    out = []
    if interp["fault"]:
        out.append(f"the interpreter faulted: {interp['fault']}")
        return out
    if interp["r0"] & RETVAL_MASK != kernel["r0"]:
        out.append(f"r0: interpreter {interp['r0'] & RETVAL_MASK}, kernel {kernel['r0']}")
    if interp["packet"] != kernel["packet"]:
        a, b = bytes.fromhex(interp["packet"]), bytes.fromhex(kernel["packet"])
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                     min(len(a), len(b)))
        out.append(f"packet: first difference at byte {first} "
                   f"(interpreter {len(a)} bytes, kernel {len(b)} bytes)")
    for name, entries in kernel["maps"].items():
        ours = interp["maps"].get(name, {})
        for key in sorted(set(entries) | set(ours)):
            if entries.get(key) != ours.get(key):
                out.append(f"map {name} key {key}: interpreter {ours.get(key)}, "
                           f"kernel {entries.get(key)}")
    return out


def run_report(obj: BpfObject, program: Program, *, packet: bytes | None, ctx: bytes | None,
               kernel: bool, stubs: dict[str, int] | None = None) -> dict[str, Any]:
    from epass.semantics.ctx import layout_for

    kind = program.kind
    has_packet = layout_for(kind.prog_type if kind else None).has_packet
    source = "file" if packet is not None else "sample" if has_packet else "none"
    if packet is None:
        packet = sample_packet() if has_packet else b""
    interp = _interpreter_json(interpret(obj, program, packet, ctx, stubs))
    report: dict[str, Any] = {
        "file": obj.path,
        "program": program_header(program),
        "input": {"packet": packet.hex(), "packet_source": source,
                  "ctx": ctx.hex() if ctx is not None else None},
        "interpreter": interp,
        "kernel": None,
        "differences": [],
        "same": None,
    }
    if kernel:
        k = on_kernel(obj, program, packet, ctx)
        report["kernel"] = k
        if k["accepted"]:
            report["differences"] = differences(interp, k)
            report["same"] = not report["differences"]
    return report


def render_run(report: dict[str, Any]) -> str:
    prog = report["program"]
    interp = report["interpreter"]
    out = [f"{report['file']}: {prog['section']}/{prog['name']}"]
    size = len(report["input"]["packet"]) // 2
    source = report["input"]["packet_source"]
    ctx = report["input"]["ctx"]
    ctx_text = f"{len(ctx) // 2}-byte context" if ctx is not None else "zeroed context"
    if source == "none":
        out.append(f"  input: {ctx_text}")
    else:
        sample = " (the built-in sample packet)" if source == "sample" else ""
        out.append(f"  input: {size}-byte packet{sample}, {ctx_text}")
    if interp["fault"]:
        out.append(f"  interpreter: fault: {interp['fault']}")
    else:
        line = f"  interpreter: r0 = {interp['r0']}, {interp['executed']} insns executed"
        if source != "none":
            changed = "unchanged" if interp["packet"] == report["input"]["packet"] else "changed"
            line += f", packet {len(interp['packet']) // 2} bytes ({changed})"
        out.append(line)
    for e in interp["uninit_reads"]:
        out.append(f"    read of uninitialized stack at insn {e['insn']}: "
                   f"{e['region']}{e['offset']:+d}, {e['size']} bytes")
    k = report["kernel"]
    if k is not None:
        if not k["accepted"]:
            err = k["verdict"]["error"]
            out.append(f"  kernel: rejected by the verifier: {err['message']}")
        else:
            out.append(f"  kernel: r0 = {k['r0']}, packet {len(k['packet']) // 2} bytes, "
                       f"{k['duration_ns']} ns")
            if report["same"]:
                out.append("  same r0, packet and maps")
            for d in report["differences"]:
                out.append(f"  DIFFERENT {d}")
    return "\n".join(out)
