"""What program an ELF section holds, following libbpf 1.x's SEC() conventions.

libbpf matches a section name against its `section_defs` table, first match
wins, with three kinds of pattern:

- "name"   exact match only ("xdp", "tc", "cgroup/connect4");
- "name+"  exact match, or "name/<target>" where <target> is what to attach to
           ("kprobe/do_sys_open", "tracepoint/syscalls/sys_enter_openat");
- "name/"  only "name/<target>" (none left in libbpf 1.x, supported anyway).

Our table below keeps libbpf's order, since that order decides overlaps such
as "xdp.frags/devmap" before "xdp.frags" before "xdp".
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.uapi import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, AttachType, ProgType


@dataclass(frozen=True)
class SectionKind:
    """How to load the program found in one section."""

    prog_type: ProgType
    expected_attach_type: AttachType | None  # None: libbpf passes 0
    attach_target: str | None  # text after "prefix/", e.g. "do_sys_open"
    sleepable: bool = False
    needs_btf_attach: bool = False  # attach_btf_id must be resolved before loading
    xdp_frags: bool = False

    @property
    def prog_flags(self) -> int:
        """The BPF_F_* load flags the section name implies."""
        flags = BPF_F_SLEEPABLE if self.sleepable else 0
        if self.xdp_frags:
            flags |= BPF_F_XDP_HAS_FRAGS
        return flags

    @property
    def btf_attach_name(self) -> tuple[str, str] | None:
        """(BTF name, BTF kind) to look up in vmlinux for attach_btf_id, if any.

        The kernel names hooks with a prefix: tp_btf/X is the typedef
        btf_trace_X, lsm/X the function bpf_lsm_X, iter/X the function
        bpf_iter_X; fentry/fexit/fmod_ret attach to the function itself.
        struct_ops and freplace resolve elsewhere (map type / target prog).
        """
        if not self.needs_btf_attach or not self.attach_target:
            return None
        if self.prog_type in (ProgType.STRUCT_OPS, ProgType.EXT):
            return None
        match self.expected_attach_type:
            case AttachType.TRACE_RAW_TP:
                return f"btf_trace_{self.attach_target}", "typedef"
            case AttachType.LSM_MAC | AttachType.LSM_CGROUP:
                return f"bpf_lsm_{self.attach_target}", "func"
            case AttachType.TRACE_ITER:
                return f"bpf_iter_{self.attach_target}", "func"
        return self.attach_target, "func"


_P = ProgType
_A = AttachType

# Row flags.
_SLEEP = "sleepable"
_BTF = "btf"
_FRAGS = "frags"

# (pattern, prog type, expected attach type, flags) -- libbpf's section_defs, in order.
_SECTION_DEFS: tuple[tuple[str, ProgType, AttachType | None, frozenset[str]], ...] = tuple(
    (pattern, ptype, atype, frozenset(flags))
    for pattern, ptype, atype, *flags in (
        ("socket", _P.SOCKET_FILTER, None),
        ("sk_reuseport/migrate", _P.SK_REUSEPORT, _A.SK_REUSEPORT_SELECT_OR_MIGRATE),
        ("sk_reuseport", _P.SK_REUSEPORT, _A.SK_REUSEPORT_SELECT),
        ("kprobe+", _P.KPROBE, None),
        ("uprobe+", _P.KPROBE, None),
        ("uprobe.s+", _P.KPROBE, None, _SLEEP),
        ("kretprobe+", _P.KPROBE, None),
        ("uretprobe+", _P.KPROBE, None),
        ("uretprobe.s+", _P.KPROBE, None, _SLEEP),
        ("kprobe.multi+", _P.KPROBE, _A.TRACE_KPROBE_MULTI),
        ("kretprobe.multi+", _P.KPROBE, _A.TRACE_KPROBE_MULTI),
        ("kprobe.session+", _P.KPROBE, _A.TRACE_KPROBE_SESSION),
        ("uprobe.multi+", _P.KPROBE, _A.TRACE_UPROBE_MULTI),
        ("uretprobe.multi+", _P.KPROBE, _A.TRACE_UPROBE_MULTI),
        ("uprobe.session+", _P.KPROBE, _A.TRACE_UPROBE_SESSION),
        ("uprobe.multi.s+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _SLEEP),
        ("uretprobe.multi.s+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _SLEEP),
        ("uprobe.session.s+", _P.KPROBE, _A.TRACE_UPROBE_SESSION, _SLEEP),
        ("ksyscall+", _P.KPROBE, None),
        ("kretsyscall+", _P.KPROBE, None),
        ("usdt+", _P.KPROBE, None),
        ("usdt.s+", _P.KPROBE, None, _SLEEP),
        ("tc/ingress", _P.SCHED_CLS, _A.TCX_INGRESS),  # libbpf: alias for tcx
        ("tc/egress", _P.SCHED_CLS, _A.TCX_EGRESS),
        ("tcx/ingress", _P.SCHED_CLS, _A.TCX_INGRESS),
        ("tcx/egress", _P.SCHED_CLS, _A.TCX_EGRESS),
        ("tc", _P.SCHED_CLS, None),
        ("classifier", _P.SCHED_CLS, None),
        ("action", _P.SCHED_ACT, None),
        ("netkit/primary", _P.SCHED_CLS, _A.NETKIT_PRIMARY),
        ("netkit/peer", _P.SCHED_CLS, _A.NETKIT_PEER),
        ("tracepoint+", _P.TRACEPOINT, None),
        ("tp+", _P.TRACEPOINT, None),
        ("raw_tracepoint+", _P.RAW_TRACEPOINT, None),
        ("raw_tp+", _P.RAW_TRACEPOINT, None),
        ("raw_tracepoint.w+", _P.RAW_TRACEPOINT_WRITABLE, None),
        ("raw_tp.w+", _P.RAW_TRACEPOINT_WRITABLE, None),
        ("tp_btf+", _P.TRACING, _A.TRACE_RAW_TP, _BTF),
        ("fentry+", _P.TRACING, _A.TRACE_FENTRY, _BTF),
        ("fmod_ret+", _P.TRACING, _A.MODIFY_RETURN, _BTF),
        ("fexit+", _P.TRACING, _A.TRACE_FEXIT, _BTF),
        ("fentry.s+", _P.TRACING, _A.TRACE_FENTRY, _BTF, _SLEEP),
        ("fmod_ret.s+", _P.TRACING, _A.MODIFY_RETURN, _BTF, _SLEEP),
        ("fexit.s+", _P.TRACING, _A.TRACE_FEXIT, _BTF, _SLEEP),
        ("freplace+", _P.EXT, None, _BTF),
        ("lsm+", _P.LSM, _A.LSM_MAC, _BTF),
        ("lsm.s+", _P.LSM, _A.LSM_MAC, _BTF, _SLEEP),
        ("lsm_cgroup+", _P.LSM, _A.LSM_CGROUP, _BTF),
        ("iter+", _P.TRACING, _A.TRACE_ITER, _BTF),
        ("iter.s+", _P.TRACING, _A.TRACE_ITER, _BTF, _SLEEP),
        ("syscall", _P.SYSCALL, None, _SLEEP),
        ("xdp.frags/devmap", _P.XDP, _A.XDP_DEVMAP, _FRAGS),
        ("xdp/devmap", _P.XDP, _A.XDP_DEVMAP),
        ("xdp.frags/cpumap", _P.XDP, _A.XDP_CPUMAP, _FRAGS),
        ("xdp/cpumap", _P.XDP, _A.XDP_CPUMAP),
        ("xdp.frags", _P.XDP, _A.XDP, _FRAGS),
        ("xdp", _P.XDP, _A.XDP),
        ("perf_event", _P.PERF_EVENT, None),
        ("lwt_in", _P.LWT_IN, None),
        ("lwt_out", _P.LWT_OUT, None),
        ("lwt_xmit", _P.LWT_XMIT, None),
        ("lwt_seg6local", _P.LWT_SEG6LOCAL, None),
        ("sockops", _P.SOCK_OPS, _A.CGROUP_SOCK_OPS),
        ("sk_skb/stream_parser", _P.SK_SKB, _A.SK_SKB_STREAM_PARSER),
        ("sk_skb/stream_verdict", _P.SK_SKB, _A.SK_SKB_STREAM_VERDICT),
        ("sk_skb/verdict", _P.SK_SKB, _A.SK_SKB_VERDICT),
        ("sk_skb", _P.SK_SKB, None),
        ("sk_msg", _P.SK_MSG, _A.SK_MSG_VERDICT),
        ("lirc_mode2", _P.LIRC_MODE2, _A.LIRC_MODE2),
        ("flow_dissector", _P.FLOW_DISSECTOR, _A.FLOW_DISSECTOR),
        ("cgroup_skb/ingress", _P.CGROUP_SKB, _A.CGROUP_INET_INGRESS),
        ("cgroup_skb/egress", _P.CGROUP_SKB, _A.CGROUP_INET_EGRESS),
        ("cgroup/skb", _P.CGROUP_SKB, None),
        ("cgroup/sock_create", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_CREATE),
        ("cgroup/sock_release", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_RELEASE),
        ("cgroup/sock", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_CREATE),
        ("cgroup/post_bind4", _P.CGROUP_SOCK, _A.CGROUP_INET4_POST_BIND),
        ("cgroup/post_bind6", _P.CGROUP_SOCK, _A.CGROUP_INET6_POST_BIND),
        ("cgroup/bind4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_BIND),
        ("cgroup/bind6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_BIND),
        ("cgroup/connect4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_CONNECT),
        ("cgroup/connect6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_CONNECT),
        ("cgroup/connect_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_CONNECT),
        ("cgroup/sendmsg4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP4_SENDMSG),
        ("cgroup/sendmsg6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP6_SENDMSG),
        ("cgroup/sendmsg_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_SENDMSG),
        ("cgroup/recvmsg4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP4_RECVMSG),
        ("cgroup/recvmsg6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP6_RECVMSG),
        ("cgroup/recvmsg_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_RECVMSG),
        ("cgroup/getpeername4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_GETPEERNAME),
        ("cgroup/getpeername6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_GETPEERNAME),
        ("cgroup/getpeername_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_GETPEERNAME),
        ("cgroup/getsockname4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_GETSOCKNAME),
        ("cgroup/getsockname6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_GETSOCKNAME),
        ("cgroup/getsockname_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_GETSOCKNAME),
        ("cgroup/sysctl", _P.CGROUP_SYSCTL, _A.CGROUP_SYSCTL),
        ("cgroup/getsockopt", _P.CGROUP_SOCKOPT, _A.CGROUP_GETSOCKOPT),
        ("cgroup/setsockopt", _P.CGROUP_SOCKOPT, _A.CGROUP_SETSOCKOPT),
        ("cgroup/dev", _P.CGROUP_DEVICE, _A.CGROUP_DEVICE),
        ("struct_ops+", _P.STRUCT_OPS, None, _BTF),
        ("struct_ops.s+", _P.STRUCT_OPS, None, _BTF, _SLEEP),
        ("sk_lookup", _P.SK_LOOKUP, _A.SK_LOOKUP),
        ("netfilter", _P.NETFILTER, _A.NETFILTER),
    )
)


def _match(pattern: str, name: str) -> tuple[bool, str | None]:
    """(matches, attach target) for one libbpf pattern."""
    if pattern.endswith("/"):
        if name.startswith(pattern):
            return True, name[len(pattern) :]
        return False, None
    if pattern.endswith("+"):
        stem = pattern[:-1]
        if name == stem:
            return True, None
        if name.startswith(stem + "/"):
            return True, name[len(stem) + 1 :]
        return False, None
    return name == pattern, None


def program_kind(section_name: str) -> SectionKind | None:
    """The program kind libbpf would infer from `section_name`, or None.

    None covers every non-program section (.text, .data, .maps, license,
    .BTF, ...) and program sections libbpf would not recognize either.
    """
    for pattern, ptype, atype, flags in _SECTION_DEFS:
        matched, target = _match(pattern, section_name)
        if matched:
            return SectionKind(
                prog_type=ptype,
                expected_attach_type=atype,
                attach_target=target or None,
                sleepable=_SLEEP in flags,
                needs_btf_attach=_BTF in flags,
                xdp_frags=_FRAGS in flags,
            )
    return None


def known_patterns() -> tuple[str, ...]:
    """The section patterns we recognize, in matching order (for error messages)."""
    return tuple(row[0] for row in _SECTION_DEFS)
