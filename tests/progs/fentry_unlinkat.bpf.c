// SPDX-License-Identifier: GPL-2.0
/*
 * fentry_unlinkat.bpf.c - fentry (BPF trampoline) on do_unlinkat(): counts
 * calls and remembers the last dfd argument in .bss globals.
 *
 * Exercises: SEC("fentry/<func>") (BPF_PROG_TYPE_TRACING,
 * BPF_TRACE_FENTRY; libbpf resolves attach_btf_id in /sys/kernel/btf/vmlinux
 * at load time), BPF_PROG() which reads typed arguments from the u64 array
 * context, .bss globals (a global-data array map behind a BPF_PSEUDO_MAP_VALUE
 * ld_imm64).  do_unlinkat(int dfd, struct filename *name) in Linux 6.18.
 * Loads only; not runnable with BPF_PROG_TEST_RUN.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct filename;

__u64 unlink_calls;
__s64 last_dfd;

SEC("fentry/do_unlinkat")
int BPF_PROG(fentry_unlinkat, int dfd, struct filename *name)
{
	__sync_fetch_and_add(&unlink_calls, 1);
	last_dfd = dfd;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
