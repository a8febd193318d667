"""Section name -> program kind, as libbpf 1.x's section_defs would decide."""

from __future__ import annotations

import pytest

from epass.obj.sections import SectionKind, known_patterns, program_kind
from epass.uapi import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, AttachType, ProgType

P = ProgType
A = AttachType

# (section name, prog type, expected attach type, attach target)
CASES: list[tuple[str, ProgType, AttachType | None, str | None]] = [
    ("socket", P.SOCKET_FILTER, None, None),
    ("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, None),
    ("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, None),
    ("kprobe/do_sys_open", P.KPROBE, None, "do_sys_open"),
    ("kprobe", P.KPROBE, None, None),
    ("kretprobe/tcp_v4_connect", P.KPROBE, None, "tcp_v4_connect"),
    ("uprobe//usr/lib/libc.so.6:malloc", P.KPROBE, None, "/usr/lib/libc.so.6:malloc"),
    ("uretprobe/libc.so.6:free", P.KPROBE, None, "libc.so.6:free"),
    ("ksyscall/openat", P.KPROBE, None, "openat"),
    ("kretsyscall/openat", P.KPROBE, None, "openat"),
    ("usdt/libc.so.6:libc:setjmp", P.KPROBE, None, "libc.so.6:libc:setjmp"),
    ("kprobe.multi/tcp_*", P.KPROBE, A.TRACE_KPROBE_MULTI, "tcp_*"),
    ("kretprobe.multi/vfs_*", P.KPROBE, A.TRACE_KPROBE_MULTI, "vfs_*"),
    ("tc", P.SCHED_CLS, None, None),
    ("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, None),
    ("tc/egress", P.SCHED_CLS, A.TCX_EGRESS, None),
    ("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, None),
    ("classifier", P.SCHED_CLS, None, None),
    ("action", P.SCHED_ACT, None, None),
    ("tracepoint/syscalls/sys_enter_openat", P.TRACEPOINT, None, "syscalls/sys_enter_openat"),
    ("tp/sched/sched_switch", P.TRACEPOINT, None, "sched/sched_switch"),
    ("raw_tracepoint/sys_enter", P.RAW_TRACEPOINT, None, "sys_enter"),
    ("raw_tp/sched_switch", P.RAW_TRACEPOINT, None, "sched_switch"),
    ("raw_tracepoint.w/bpf_testmod_test_writable_bare", P.RAW_TRACEPOINT_WRITABLE, None,
     "bpf_testmod_test_writable_bare"),
    ("raw_tp.w/foo", P.RAW_TRACEPOINT_WRITABLE, None, "foo"),
    ("tp_btf/sched_switch", P.TRACING, A.TRACE_RAW_TP, "sched_switch"),
    ("fentry/do_unlinkat", P.TRACING, A.TRACE_FENTRY, "do_unlinkat"),
    ("fexit/do_unlinkat", P.TRACING, A.TRACE_FEXIT, "do_unlinkat"),
    ("fmod_ret/security_file_open", P.TRACING, A.MODIFY_RETURN, "security_file_open"),
    ("fentry.s/__x64_sys_open", P.TRACING, A.TRACE_FENTRY, "__x64_sys_open"),
    ("freplace/handle_pkt", P.EXT, None, "handle_pkt"),
    ("lsm/file_open", P.LSM, A.LSM_MAC, "file_open"),
    ("lsm.s/bprm_committed_creds", P.LSM, A.LSM_MAC, "bprm_committed_creds"),
    ("lsm_cgroup/socket_bind", P.LSM, A.LSM_CGROUP, "socket_bind"),
    ("iter/task", P.TRACING, A.TRACE_ITER, "task"),
    ("iter.s/task_file", P.TRACING, A.TRACE_ITER, "task_file"),
    ("syscall", P.SYSCALL, None, None),
    ("xdp", P.XDP, A.XDP, None),
    ("xdp.frags", P.XDP, A.XDP, None),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, None),
    ("xdp/cpumap", P.XDP, A.XDP_CPUMAP, None),
    ("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, None),
    ("perf_event", P.PERF_EVENT, None, None),
    ("lwt_in", P.LWT_IN, None, None),
    ("lwt_out", P.LWT_OUT, None, None),
    ("lwt_xmit", P.LWT_XMIT, None, None),
    ("lwt_seg6local", P.LWT_SEG6LOCAL, None, None),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, None),
    ("sk_skb", P.SK_SKB, None, None),
    ("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, None),
    ("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, None),
    ("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, None),
    ("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, None),
    ("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, None),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, None),
    ("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, None),
    ("cgroup/skb", P.CGROUP_SKB, None, None),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, None),
    ("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, None),
    ("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, None),
    ("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, None),
    ("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, None),
    ("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, None),
    ("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, None),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, None),
    ("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, None),
    ("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, None),
    ("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, None),
    ("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, None),
    ("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, None),
    ("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, None),
    ("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, None),
    ("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, None),
    ("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, None),
    ("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, None),
    ("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, None),
    ("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, None),
    ("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, None),
    ("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, None),
    ("struct_ops/tcp_init", P.STRUCT_OPS, None, "tcp_init"),
    ("struct_ops", P.STRUCT_OPS, None, None),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, None),
    ("netfilter", P.NETFILTER, A.NETFILTER, None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ptype", "atype", "target"), CASES, ids=[c[0] for c in CASES])
def test_program_kind(
    name: str, ptype: ProgType, atype: AttachType | None, target: str | None
) -> None:
    kind = program_kind(name)
    assert kind is not None
    assert (kind.prog_type, kind.expected_attach_type, kind.attach_target) == (
        ptype,
        atype,
        target,
    )


@pytest.mark.parametrize(
    "name",
    [
        # Non-program sections of a BPF object.
        ".text", ".data", ".rodata", ".bss", ".maps", "maps", "license", "version",
        ".BTF", ".BTF.ext", ".rel.text", ".relxdp", ".symtab", ".strtab", ".struct_ops",
        # Near misses: exact-only names take no suffix, prefixes need a '/'.
        "xdp/foo", "xdp_prog", "socket/1", "tc/other", "tcx", "kprobex/f",
        "kprobe.multix", "tracepoint_foo", "cgroup/connect", "cgroup_skb", "sk_skb/parser",
        "fentry_foo", "", "/", "XDP",
    ],
)  # fmt: skip
def test_not_a_program(name: str) -> None:
    assert program_kind(name) is None


def test_kprobe_target() -> None:
    kind = program_kind("kprobe/do_sys_open")
    assert kind == SectionKind(
        prog_type=ProgType.KPROBE,
        expected_attach_type=None,
        attach_target="do_sys_open",
    )


def test_tracepoint_target_keeps_category() -> None:
    kind = program_kind("tracepoint/syscalls/sys_enter_openat")
    assert kind is not None
    assert kind.attach_target == "syscalls/sys_enter_openat"


@pytest.mark.parametrize(
    ("name", "sleepable", "needs_btf"),
    [
        ("fentry/f", False, True),
        ("fentry.s/f", True, True),
        ("fexit.s/f", True, True),
        ("fmod_ret.s/f", True, True),
        ("lsm/file_open", False, True),
        ("lsm.s/file_open", True, True),
        ("iter/task", False, True),
        ("iter.s/task", True, True),
        ("tp_btf/sched_switch", False, True),
        ("struct_ops/init", False, True),
        ("struct_ops.s/init", True, True),
        ("uprobe.s/bin:f", True, False),
        ("usdt.s/bin:p:n", True, False),
        ("syscall", True, False),
        ("kprobe/f", False, False),
        ("xdp", False, False),
    ],
)
def test_sleepable_and_btf_flags(name: str, sleepable: bool, needs_btf: bool) -> None:
    kind = program_kind(name)
    assert kind is not None
    assert (kind.sleepable, kind.needs_btf_attach) == (sleepable, needs_btf)
    assert bool(kind.prog_flags & BPF_F_SLEEPABLE) == sleepable


def test_xdp_frags_flag() -> None:
    frags = program_kind("xdp.frags")
    plain = program_kind("xdp")
    assert frags is not None and plain is not None
    assert frags.xdp_frags and frags.prog_flags == BPF_F_XDP_HAS_FRAGS
    assert not plain.xdp_frags and plain.prog_flags == 0
    devmap = program_kind("xdp.frags/devmap")
    assert devmap is not None and devmap.xdp_frags


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fentry/do_unlinkat", ("do_unlinkat", "func")),
        ("fmod_ret/security_file_open", ("security_file_open", "func")),
        ("tp_btf/sched_switch", ("btf_trace_sched_switch", "typedef")),
        ("lsm/file_open", ("bpf_lsm_file_open", "func")),
        ("lsm_cgroup/socket_bind", ("bpf_lsm_socket_bind", "func")),
        ("iter/task", ("bpf_iter_task", "func")),
        ("struct_ops/init", None),
        ("freplace/handle", None),
        ("fentry", None),
        ("kprobe/f", None),
    ],
)
def test_btf_attach_name(name: str, expected: tuple[str, str] | None) -> None:
    kind = program_kind(name)
    assert kind is not None
    assert kind.btf_attach_name == expected


def test_table_order_puts_specific_before_general() -> None:
    patterns = known_patterns()
    assert len(patterns) == len(set(patterns))
    assert patterns.index("xdp.frags/devmap") < patterns.index("xdp.frags") < patterns.index("xdp")
    assert patterns.index("cgroup/sock_create") < patterns.index("cgroup/sock")
    assert patterns.index("tc/ingress") < patterns.index("tc")
