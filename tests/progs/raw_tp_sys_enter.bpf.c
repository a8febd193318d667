// SPDX-License-Identifier: GPL-2.0
/*
 * raw_tp_sys_enter.bpf.c - raw tracepoint sys_enter: per-CPU count of
 * system calls by syscall number.
 *
 * Exercises: SEC("raw_tp/<name>") (BPF_PROG_TYPE_RAW_TRACEPOINT), context
 * struct bpf_raw_tracepoint_args (args[1] is the syscall id for sys_enter),
 * BPF_MAP_TYPE_PERCPU_ARRAY lookup with an index bounded by an explicit
 * check, a non-atomic increment (per-CPU value).
 * Loads only; not runnable with BPF_PROG_TEST_RUN in this suite.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_SYSCALLS 512

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u64);
} syscall_count SEC(".maps");

SEC("raw_tp/sys_enter")
int raw_tp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = ctx->args[1];
	__u32 key;
	__u64 *cnt;

	if (id >= MAX_SYSCALLS)
		return 0;
	key = (__u32)id;
	cnt = bpf_map_lookup_elem(&syscall_count, &key);
	if (cnt)
		*cnt += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
