"""CO-RE relocations through the object reader, checked against vmlinux and the verifier."""

from __future__ import annotations

import subprocess

from epass.isa import Call
from epass.obj.btf import BtfKind, BtfStruct, load_vmlinux_btf
from epass.obj.core_patch import POISON_HELPER_ID
from epass.obj.reader import read_object

import progs
from cli import epass

SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct task_struct {
	int pid;
	int tgid;
	int epass_no_such_field;
} __attribute__((preserve_access_index));

SEC("kprobe/do_sys_openat2")
int core_task(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	int pid = BPF_CORE_READ(t, pid);
	int tgid = BPF_CORE_READ(t, tgid);

	if (bpf_core_field_exists(t->epass_no_such_field))
		pid += BPF_CORE_READ(t, epass_no_such_field);
	return pid ^ tgid;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _member_offset(struct_name: str, member: str) -> int:
    vmlinux = load_vmlinux_btf()
    (tid,) = vmlinux.find(BtfKind.STRUCT, struct_name)
    t = vmlinux.type(tid)
    assert isinstance(t, BtfStruct)
    (m,) = [m for m in t.members if m.name == member]
    return m.bit_offset // 8


@progs.skip_without_clang
def test_core_offsets_come_from_the_running_kernel(tmp_path, bpf_permitted):
    src = tmp_path / "core_task.bpf.c"
    src.write_text(SOURCE)
    obj_path = tmp_path / "core_task.o"
    subprocess.run([progs.CLANG, *progs.CFLAGS, *progs.INCLUDES, "-c", str(src), "-o",
                    str(obj_path)], check=True)
    obj = read_object(str(obj_path))
    (prog,) = obj.programs
    # pid and tgid reads, the exists check, and the guarded read
    assert prog.core_relos_applied == 4
    pid_off = _member_offset("task_struct", "pid")
    tgid_off = _member_offset("task_struct", "tgid")
    assert pid_off > 1000  # far from the local offsets 0 and 4 clang compiled in
    # BPF_CORE_READ goes through bpf_probe_read_kernel: the offset is a mov immediate
    text = epass("read", str(obj_path), "--json").json()["programs"][0]
    assert text["core_relocations"] == 4
    texts = [i["text"] for i in text["insns"]]
    assert texts[2] == f"r1 = {pid_off}"
    assert texts[9] == f"r1 = {tgid_off}"
    assert texts[18:20] == ["r1 = 0", "if r1 == 0x0 goto pc+10"]  # field exists? no
    # the missing field's read is poisoned, like libbpf does, and never reached
    assert any(isinstance(i, Call) and i.imm == POISON_HELPER_ID for i in prog.insns)
    run = epass("verify", str(obj_path))
    assert run.code == 0, run.out
