// SPDX-License-Identifier: GPL-2.0
/*
 * tp_btf_sys_enter.bpf.c - BTF-enabled raw tracepoint (SEC("tp_btf/<name>"),
 * BPF_PROG_TYPE_TRACING with expected_attach_type BPF_TRACE_RAW_TP):
 * counts openat(2) entries per process in a hash map.
 *
 * Exercises: a BPF_PROG_TYPE_TRACING program whose attach_btf_id libbpf
 * resolves against /sys/kernel/btf/vmlinux (btf_trace_sys_enter), typed
 * arguments read from the u64 context array through BPF_PROG(), a hash map
 * update with BPF_ANY. Unlike fentry it needs no BPF trampoline, so it loads
 * on kernels that refuse fentry (see tests/progs/README.md).
 * Loads only; not runnable with BPF_PROG_TEST_RUN in this suite.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NR_OPENAT 257 /* x86-64 */

struct pt_regs;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} openat_by_tgid SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(tp_btf_sys_enter, struct pt_regs *regs, long id)
{
	__u32 tgid;
	__u64 one = 1, *cnt;

	if (id != NR_OPENAT)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	cnt = bpf_map_lookup_elem(&openat_by_tgid, &tgid);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&openat_by_tgid, &tgid, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
