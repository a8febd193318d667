/* Shared includes for the verifier-log fixture programs (see regen.py). */
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Selftest-style helpers for naked inline-asm programs. */
#define __naked __attribute__((naked))
#define __imm(name) [name] "i"(name)
#define __imm_addr(name) [name] "i"(&name)

char LICENSE[] SEC("license") = "GPL";
