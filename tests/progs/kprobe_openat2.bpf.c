// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_openat2.bpf.c - kprobe on do_sys_openat2(): per-process call count
 * and the last file name opened, in a BTF-defined hash map.
 *
 * Exercises: SEC("kprobe/<func>") (BPF_PROG_TYPE_KPROBE, libbpf sets
 * kern_version), BPF_KPROBE() argument access through struct pt_regs
 * (x86-64 register offsets; __TARGET_ARCH_x86 is defined here because the
 * project's build line does not pass it), bpf_get_current_pid_tgid,
 * BPF_MAP_TYPE_HASH lookup / update(BPF_NOEXIST) / re-lookup,
 * bpf_probe_read_user_str (gpl_only) into a map value.
 * Loads only; not runnable with BPF_PROG_TEST_RUN.
 */
#define __TARGET_ARCH_x86
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NAME_LEN 32

struct open_stat {
	__u64 calls;
	__s64 last_dfd;
	char last_name[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, struct open_stat);
} open_stats SEC(".maps");

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(kprobe_openat2, int dfd, const char *filename)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct open_stat *st, zero = {};

	st = bpf_map_lookup_elem(&open_stats, &tgid);
	if (!st) {
		bpf_map_update_elem(&open_stats, &tgid, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&open_stats, &tgid);
		if (!st)
			return 0;
	}
	__sync_fetch_and_add(&st->calls, 1);
	st->last_dfd = dfd;
	bpf_probe_read_user_str(st->last_name, sizeof(st->last_name), filename);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
