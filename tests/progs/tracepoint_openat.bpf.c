// SPDX-License-Identifier: GPL-2.0
/*
 * tracepoint_openat.bpf.c - tracepoint syscalls/sys_enter_openat that sends
 * one event per openat() (pid, comm, flags, file name) through a ring buffer.
 *
 * Exercises: SEC("tracepoint/<category>/<name>") (BPF_PROG_TYPE_TRACEPOINT)
 * with a hand-written context struct matching the tracepoint's format file
 * (common fields 8 bytes, __syscall_nr at 8, args at 16..), context loads of
 * 8-byte fields, BPF_MAP_TYPE_RINGBUF with bpf_ringbuf_reserve /
 * bpf_ringbuf_submit / bpf_ringbuf_discard (reference-tracked pointer that
 * must be released on every path), bpf_get_current_comm,
 * bpf_probe_read_user_str. Loads only; not runnable with BPF_PROG_TEST_RUN.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* /sys/kernel/tracing/events/syscalls/sys_enter_openat/format */
struct sys_enter_openat_ctx {
	__u64 common;          /* common_type, common_flags, preempt_count, pid */
	__s32 syscall_nr;
	__u32 pad;
	__s64 dfd;
	const char *filename;
	__s64 flags;
	__u64 mode;
};

struct open_event {
	__u32 pid;
	__u32 flags;
	char comm[16];
	char filename[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int tracepoint_openat(struct sys_enter_openat_ctx *ctx)
{
	struct open_event *ev;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->flags = (__u32)ctx->flags;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (bpf_probe_read_user_str(ev->filename, sizeof(ev->filename), ctx->filename) < 0) {
		bpf_ringbuf_discard(ev, 0);
		return 0;
	}
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
