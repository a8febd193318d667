"""Talking to the running kernel: the bpf(2) syscall and what it reports."""
