"""The BPF C test programs under ``tests/progs/``: a declarative table and a builder.

Every entry of :data:`PROGS` describes one ``tests/progs/<name>.bpf.c`` file:
what the kernel verifier says about it, the oldest ``-mcpu`` it can be built
for, whether ``BPF_PROG_TEST_RUN`` can run it, which programs, sections and
maps the object contains, and what ``bpftool prog loadall`` does with it.
``tests/test_progs_build.py`` checks every claim made here against clang,
pyelftools and the running kernel (via bpftool), so other tests can rely on it
as ground truth.

Files whose names start with ``btf_`` or ``core_`` belong to another test
suite and are not in this table (:func:`build` still builds them).

Build one by hand::

    clang-19 -O2 -g -target bpf -mcpu=v3 -I/usr/include/x86_64-linux-gnu \\
        -c tests/progs/atomics.bpf.c -o /tmp/atomics.v3.o
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

PROGS_DIR = Path(__file__).resolve().parent / "progs"
CPUS = ("v2", "v3", "v4")
CLANG = "clang-19"
CFLAGS = ("-O2", "-g", "-target", "bpf")
INCLUDES = ("-I/usr/include/x86_64-linux-gnu",)
# Files with these prefixes are owned by another suite (BTF / CO-RE tests).
FOREIGN_PREFIXES = ("btf_", "core_")

# Return codes of the program types used here (uapi values).
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3
TC_ACT_OK, TC_ACT_SHOT = 0, 2


class BuildError(RuntimeError):
    """clang failed; ``stderr`` holds the compiler's diagnostics."""

    def __init__(self, name: str, cpu: str, cmd: Sequence[str], stderr: str) -> None:
        self.name = name
        self.cpu = cpu
        self.cmd = list(cmd)
        self.stderr = stderr
        super().__init__(
            f"building {name}.bpf.c for -mcpu={cpu} failed:\n"
            f"$ {' '.join(self.cmd)}\n{stderr.rstrip()}"
        )


@dataclass(frozen=True)
class Prog:
    """One test program file and everything we claim about it."""

    name: str
    """File stem: ``tests/progs/<name>.bpf.c``."""
    verdict: str
    """Kernel verifier verdict on Linux 6.18: ``"accept"`` or ``"reject"``."""
    programs: tuple[tuple[str, str], ...]
    """``(function name, ELF section)`` of every program, in section order."""
    what: str
    """One line: what the program exercises."""
    min_cpu: str = "v2"
    min_cpu_error: str | None = None
    """Substring of clang's error when built below ``min_cpu``."""
    test_run: bool = False
    """``BPF_PROG_TEST_RUN`` can run it (XDP, tc, socket filter)."""
    sample_retval: tuple[tuple[str, int], ...] = ()
    """Return value of each program on :func:`sample_packet` (test_run programs)."""
    rewrites_packet: bool = False
    """Running it on :func:`sample_packet` changes the packet (data_out != data_in)."""
    maps: tuple[str, ...] = ()
    """Names of the maps declared in ``.maps`` (or legacy ``maps``)."""
    data_sections: tuple[str, ...] = ()
    """Global-data sections that must be present (``.data``, ``.rodata``, ``.bss``)."""
    subprogs: bool = False
    """The object has a ``.text`` section with BPF-to-BPF callees or callbacks."""
    features: frozenset[str] = frozenset()
    """Instruction features that must appear in the bytecode (see test_progs_build)."""
    license: str = "GPL"
    bpftool: str = "load"
    """What ``bpftool prog loadall`` does: ``"load"``, ``"reject"`` (verifier) or
    ``"open-error"`` (libbpf refuses the object before any bpf() call)."""
    bpftool_error: str | None = None
    """Substring of bpftool's output when it does not load the object."""
    requires: tuple[str, ...] = ()
    """Kernel facilities beyond plain bpf(): ``"trampoline"`` (fentry/fexit)."""
    notes: str = ""

    @property
    def source(self) -> Path:
        return PROGS_DIR / f"{self.name}.bpf.c"

    @property
    def cpus(self) -> tuple[str, ...]:
        """The ``-mcpu`` values this program is built for."""
        return CPUS[CPUS.index(self.min_cpu) :]

    @property
    def sections(self) -> tuple[str, ...]:
        """Distinct program sections, in order of first appearance."""
        return tuple(dict.fromkeys(sec for _, sec in self.programs))


NULL_DEREF = "invalid mem access 'map_value_or_null'"
PKT_NO_BOUNDS = "invalid access to packet"
UNBOUNDED = "unbounded memory access, make sure to bounds check any such access"
TOO_LARGE = "BPF program is too large. Processed 1000001 insn"
LEGACY_MAPS = "legacy map definitions in 'maps' section are not supported by libbpf v1.0+"
NEEDS_V3 = "unsupported atomic operation, please use 64 bit version"
NEEDS_V4 = "unsupported signed division, please convert to unsigned div/mod"

PROGS: tuple[Prog, ...] = (
    # --- XDP -------------------------------------------------------------
    Prog(
        "xdp_parse_drop",
        "accept",
        (("xdp_parse_drop", "xdp"),),
        "XDP: Ethernet+IPv4 parse with data/data_end checks; drop UDP, ttl<=1, ihl<5",
        test_run=True,
        sample_retval=(("xdp_parse_drop", XDP_DROP),),
    ),
    Prog(
        "xdp_rewrite",
        "accept",
        (("xdp_rewrite", "xdp"),),
        "XDP reflector: swap MACs, decrement TTL with incremental checksum, XDP_TX",
        test_run=True,
        sample_retval=(("xdp_rewrite", XDP_TX),),
        rewrites_packet=True,
        notes="data_out differs from data_in (bytes 0-11, TTL, checksum)",
    ),
    Prog(
        "xdp_map_counter",
        "accept",
        (("xdp_map_counter", "xdp"),),
        "XDP: BTF array map counter per IP protocol; XADD (fetch_add, result unused)",
        test_run=True,
        sample_retval=(("xdp_map_counter", XDP_PASS),),
        maps=("proto_count",),
        features=frozenset({"atomic"}),
    ),
    Prog(
        "global_data",
        "accept",
        (("global_data", "xdp"),),
        "XDP configured by .rodata (const volatile), .data verdict, .bss counters",
        test_run=True,
        sample_retval=(("global_data", XDP_PASS),),
        data_sections=(".rodata", ".data", ".bss"),
    ),
    Prog(
        "subprog_calls",
        "accept",
        (("subprog_calls", "xdp"),),
        "XDP: static __noinline calls two deep, global funcs (scalar arg, ctx arg)",
        test_run=True,
        sample_retval=(("subprog_calls", XDP_PASS),),
        subprogs=True,
        features=frozenset({"pseudo_call"}),
    ),
    Prog(
        "bpf_loop_cb",
        "accept",
        (("bpf_loop_cb", "xdp"),),
        "XDP: bpf_loop and bpf_for_each_map_elem callbacks (ld_imm64 of a function)",
        test_run=True,
        sample_retval=(("bpf_loop_cb", XDP_PASS),),
        maps=("weights",),
        data_sections=(".bss",),
        subprogs=True,
        features=frozenset({"helper:bpf_loop", "helper:bpf_for_each_map_elem"}),
    ),
    Prog(
        "loop_bounded",
        "accept",
        (("loop_bounded", "xdp"),),
        "XDP: two bounded loops kept as loops (unroll disabled): back-edges",
        test_run=True,
        sample_retval=(("loop_bounded", XDP_PASS),),
        maps=("scan",),
        data_sections=(".bss",),
        features=frozenset({"back_edge"}),
    ),
    Prog(
        "insn_loop",
        "accept",
        (("insn_loop", "xdp"),),
        "XDP: a loop run min(data[0], 6) times (unroll disabled): insn_counter's target",
        test_run=True,
        sample_retval=(("insn_loop", XDP_PASS),),
        features=frozenset({"back_edge"}),
        notes="6 trips at most, so `epass prove --unroll 8` follows every path",
    ),
    Prog(
        "atomics",
        "accept",
        (("atomics", "xdp"),),
        "XDP: every BPF_ATOMIC op (add/or/and/xor +-fetch, xchg, cmpxchg), 32+64 bit",
        min_cpu="v3",
        min_cpu_error=NEEDS_V3,
        test_run=True,
        sample_retval=(("atomics", XDP_PASS),),
        maps=("atom_map",),
        data_sections=(".bss",),
        features=frozenset({"atomic", "atomic_fetch", "atomic32", "xchg", "cmpxchg"}),
        notes="clang-19 refuses fetching and 32-bit atomics for -mcpu=v2 "
        "(and crashes on __sync_fetch_and_and of a 32-bit value)",
    ),
    Prog(
        "v4_insns",
        "accept",
        (("v4_insns", "xdp"),),
        "XDP: cpu v4 instructions: ldsx, movsx, sdiv/smod (32+64), bswap16/32/64",
        min_cpu="v4",
        min_cpu_error=NEEDS_V4,
        test_run=True,
        sample_retval=(("v4_insns", XDP_PASS),),
        data_sections=(".bss",),
        features=frozenset({"ldsx", "movsx", "sdiv", "smod", "bswap"}),
        notes="clang-19 refuses signed division below v4; gotol not provoked",
    ),
    Prog(
        "maps_btf",
        "accept",
        (("maps_btf", "xdp"),),
        "XDP: BTF hash, array, percpu array and ringbuf (reserve/submit/discard)",
        test_run=True,
        sample_retval=(("maps_btf", XDP_PASS),),
        maps=("by_src", "sample_every", "totals", "samples"),
        features=frozenset({"helper:bpf_ringbuf_reserve", "helper:bpf_ringbuf_submit"}),
    ),
    Prog(
        "same_section",
        "accept",
        (("xdp_pass_small", "xdp"), ("xdp_drop_odd", "xdp")),
        "two programs in the SAME section 'xdp', sharing a .text subprogram",
        test_run=True,
        sample_retval=(("xdp_pass_small", XDP_PASS), ("xdp_drop_odd", XDP_PASS)),
        subprogs=True,
        features=frozenset({"pseudo_call"}),
    ),
    Prog(
        "two_sections",
        "accept",
        (("xdp_count", "xdp"), ("tc_count", "tc")),
        "two programs in two sections (xdp, tc) sharing a map and a subprogram",
        test_run=True,
        sample_retval=(("xdp_count", XDP_PASS), ("tc_count", TC_ACT_OK)),
        maps=("hook_hits",),
        subprogs=True,
        features=frozenset({"pseudo_call"}),
    ),
    Prog(
        "uninit_read",
        "accept",
        (("uninit_read", "xdp"),),
        "XDP: a stack variable initialized on some paths only, read on all (msan's target)",
        notes="BPF_PROG_TEST_RUN runs it, but test_run stays False: on frames whose first "
        "byte is not 2 it reads uninitialized stack, garbage in the kernel and zeros in the "
        "interpreter, so the suites comparing the two on generated packets cannot use it "
        "(tests/test_pass_msan.py runs it on chosen packets)",
    ),
    Prog(
        "helper_flags",
        "accept",
        (("helper_flags", "xdp"),),
        "XDP: bpf_map_update_elem flags from the packet (-EINVAL ignored): "
        "helper_validation's target",
        test_run=True,
        sample_retval=(("helper_flags", XDP_PASS),),
        maps=("last_len",),
    ),
    Prog(
        "oob_index",
        "accept",
        (("oob_index", "xdp"),),
        "XDP: masked packet indices run past a global array and a stack array (asan's target)",
        test_run=True,
        sample_retval=(("oob_index", 37),),
        data_sections=(".data",),
        notes="i = data[0] & 7 indexes table[4] in .data, j = data[1] & 7 buf[4] on the "
        "stack; from 4 on they reach the next variable, inside the region the verifier checks",
    ),
    Prog(
        "rv_maybe_null",
        "accept",
        (("rv_maybe_null", "xdp"),),
        "XDP: a maybe-NULL lookup result copied into a helper argument before its NULL "
        "check, then a variable index (runtime_validation's target)",
        test_run=True,
        sample_retval=(("rv_maybe_null", XDP_TX),),
        maps=("rv_recs",),
        notes="key data[0] in an array of 4 (else NULL: XDP_DROP); bpf_probe_read_kernel "
        "takes the pointer before the check (NULL makes it fail); slots[data[1] & 7]",
    ),
    # --- tc --------------------------------------------------------------
    Prog(
        "tc_skb_fields",
        "accept",
        (("tc_skb_fields", "tc"),),
        "tc: read skb->len/protocol/mark, write skb->mark, bpf_skb_load_bytes",
        test_run=True,
        sample_retval=(("tc_skb_fields", TC_ACT_OK),),
        features=frozenset({"helper:bpf_skb_load_bytes"}),
    ),
    Prog(
        "tc_classifier",
        "accept",
        (("tc_classifier", "classifier"),),
        'tc in legacy SEC("classifier"): hash-map blocklist, skb->priority store',
        test_run=True,
        sample_retval=(("tc_classifier", TC_ACT_OK),),
        maps=("blocklist",),
        license="Dual BSD/GPL",
    ),
    # --- socket filters --------------------------------------------------
    Prog(
        "socket_len",
        "accept",
        (("socket_len", "socket"),),
        "socket filter returning a length from packet bytes; non-GPL license",
        test_run=True,
        sample_retval=(("socket_len", 60),),
        license="BSD",
        features=frozenset({"helper:bpf_skb_load_bytes"}),
        notes="skb->data is the IPv4 header under BPF_PROG_TEST_RUN; skb->len = 60",
    ),
    Prog(
        "socket_ld_abs",
        "accept",
        (("socket_ld_abs", "socket"),),
        "socket filter with legacy LD_ABS/LD_IND (llvm.bpf.load.* intrinsics)",
        test_run=True,
        sample_retval=(("socket_ld_abs", 0xFFFFFFFF),),
        features=frozenset({"ld_abs", "ld_ind"}),
        notes="clang-19 has no __builtin_bpf_load_byte; asm-label intrinsics as in "
        "samples/bpf/bpf_legacy.h",
    ),
    Prog(
        "legacy_map_def",
        "accept",
        (("legacy_map_def", "socket"),),
        'socket filter with legacy struct bpf_map_def maps in SEC("maps")',
        test_run=True,
        maps=("legacy_counts", "legacy_last"),
        bpftool="open-error",
        bpftool_error=LEGACY_MAPS,
        notes="read-only test material for our object reader: libbpf 1.x (bpftool) "
        "cannot open it; the kernel accepts the program when a loader creates the maps",
    ),
    # --- tracing (load only) ---------------------------------------------
    Prog(
        "kprobe_openat2",
        "accept",
        (("kprobe_openat2", "kprobe/do_sys_openat2"),),
        "kprobe: BPF_KPROBE args from pt_regs, hash map, bpf_probe_read_user_str",
        maps=("open_stats",),
    ),
    Prog(
        "tracepoint_openat",
        "accept",
        (("tracepoint_openat", "tracepoint/syscalls/sys_enter_openat"),),
        "tracepoint: hand-written ctx struct, ringbuf reserve/submit/discard",
        maps=("events",),
        features=frozenset({"helper:bpf_ringbuf_reserve", "helper:bpf_ringbuf_discard"}),
    ),
    Prog(
        "raw_tp_sys_enter",
        "accept",
        (("raw_tp_sys_enter", "raw_tp/sys_enter"),),
        "raw tracepoint: bpf_raw_tracepoint_args, per-CPU array indexed by syscall",
        maps=("syscall_count",),
    ),
    Prog(
        "tp_btf_sys_enter",
        "accept",
        (("tp_btf_sys_enter", "tp_btf/sys_enter"),),
        "BTF raw tracepoint (BPF_PROG_TYPE_TRACING, attach_btf_id), hash map",
        maps=("openat_by_tgid",),
    ),
    Prog(
        "fentry_unlinkat",
        "accept",
        (("fentry_unlinkat", "fentry/do_unlinkat"),),
        "fentry on do_unlinkat: BPF_PROG typed args, .bss counters",
        data_sections=(".bss",),
        requires=("trampoline",),
        notes="the reference machine (6.18, lockdown=integrity) refuses every fentry "
        "load with EPERM and an empty verifier log; tp_btf loads. Skipped there",
    ),
    # --- rejected by the verifier ----------------------------------------
    Prog(
        "reject_null_deref",
        "reject",
        (("reject_null_deref", "xdp"),),
        "BUG: map_lookup_elem result dereferenced without NULL check",
        maps=("counts",),
        bpftool="reject",
        bpftool_error=NULL_DEREF,
    ),
    Prog(
        "reject_pkt_no_bounds",
        "reject",
        (("reject_pkt_no_bounds", "xdp"),),
        "BUG: packet read without a data_end check",
        bpftool="reject",
        bpftool_error=PKT_NO_BOUNDS,
    ),
    Prog(
        "reject_unbounded_index",
        "reject",
        (("reject_unbounded_index", "tc"),),
        "BUG: map value indexed by unchecked skb->mark",
        maps=("table",),
        bpftool="reject",
        bpftool_error=UNBOUNDED,
    ),
    Prog(
        "reject_loop_states",
        "reject",
        (("reject_loop_states", "xdp"),),
        "SAFE but rejected: precise loop counter defeats pruning, 1M insn limit",
        maps=("zero_hist",),
        features=frozenset({"back_edge"}),
        bpftool="reject",
        bpftool_error=TOO_LARGE,
        notes="false rejection; about 1.7 s of verifier time per load",
    ),
)

BY_NAME: dict[str, Prog] = {p.name: p for p in PROGS}


def get(name: str) -> Prog:
    """The table entry for ``name`` (KeyError names the known programs)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in tests/progs.py:PROGS") from None


def builds() -> Iterator[tuple[str, str]]:
    """Every ``(name, cpu)`` pair that must build: cpus from each min_cpu up."""
    for p in PROGS:
        for cpu in p.cpus:
            yield p.name, cpu


def clang_missing_reason() -> str | None:
    """Why BPF programs cannot be compiled here, or None if clang-19 exists."""
    if shutil.which(CLANG) is None:
        return f"{CLANG} not found on PATH (apt-get install clang-19)"
    return None


skip_without_clang = pytest.mark.skipif(
    clang_missing_reason() is not None, reason=clang_missing_reason() or ""
)
"""Marker: skip a test when clang-19 is missing."""


def build_command(name: str, cpu: str, out: Path, extra_flags: Sequence[str] = ()) -> list[str]:
    src = PROGS_DIR / f"{name}.bpf.c"
    return [CLANG, *CFLAGS, f"-mcpu={cpu}", *INCLUDES, *extra_flags, "-c", str(src), "-o", str(out)]


def build(name: str, cpu: str, out_dir: Path, *, extra_flags: Sequence[str] = ()) -> Path:
    """Compile ``tests/progs/<name>.bpf.c`` for ``-mcpu=<cpu>`` into ``out_dir``.

    Returns ``out_dir/<name>.<cpu>.o``. Raises :class:`BuildError` carrying
    clang's stderr if compilation fails, FileNotFoundError if the source or
    clang-19 is missing.
    """
    if cpu not in CPUS:
        raise ValueError(f"cpu must be one of {CPUS}, not {cpu!r}")
    src = PROGS_DIR / f"{name}.bpf.c"
    if not src.is_file():
        raise FileNotFoundError(f"no test program {src}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.{cpu}.o"
    cmd = build_command(name, cpu, out, extra_flags)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        raise BuildError(name, cpu, cmd, proc.stderr)
    return out


def sample_packet() -> bytes:
    """The reference input for ``sample_retval``: epass's own default packet, a 74-byte
    Ethernet/IPv4/UDP frame 10.0.0.1:1234 -> 10.0.0.2:53 with a valid IPv4 checksum."""
    from epass.semantics.packets import sample_packet as epass_sample_packet

    return epass_sample_packet()
