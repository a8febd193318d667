"""What a BPF object file holds, once read: maps, functions, programs.

A `Program` is an entry point as the kernel will see it: its own code
followed by every subprogram it reaches, with bpf-to-bpf calls and
function pointers already pointing at the right slots (libbpf's linking),
CO-RE relocations applied, and map references left as `MapRef`s for the
loader to turn into file descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from epass.errors import ObjectError
from epass.isa import Insn
from epass.obj.btf import Btf
from epass.obj.btf_ext import LineInfo
from epass.obj.sections import SectionKind


class MapOrigin(Enum):
    BTF = "btf"  # `struct { __uint(type, ...) } name SEC(".maps")`
    LEGACY = "legacy"  # `struct bpf_map_def SEC("maps")`
    DATA = "data"  # global data: one array map per .data/.rodata/.bss section


@dataclass(frozen=True)
class DataVar:
    """A variable of a global-data section: where it sits in the map's value (fixed-up BTF)."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class MapDef:
    """A map the object needs, with what MAP_CREATE takes."""

    name: str
    type: int  # MapType value
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    origin: MapOrigin = MapOrigin.BTF
    section: str = ".maps"
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    pinning: int = 0
    map_extra: int = 0
    numa_node: int = 0  # with BPF_F_NUMA_NODE in flags
    initial: bytes | None = None  # global data: the section's contents (None for .bss)
    readonly: bool = False  # .rodata: frozen after it is filled
    # global data: the section's variables by offset, from its DATASEC (for the asan pass)
    vars: tuple[DataVar, ...] = ()


@dataclass(frozen=True)
class MapRef:
    """An lddw at `insn` (slot index in the linked program) that refers to a map.

    `value` means a pointer into the map's value at `offset` (global data);
    otherwise the map itself.
    """

    insn: int
    map: str
    value: bool = False
    offset: int = 0


@dataclass(frozen=True)
class FuncInfo:
    """A function's BTF FUNC type at a slot of the linked program."""

    insn: int
    type_id: int
    name: str


@dataclass(frozen=True)
class Function:
    """One STT_FUNC symbol's code in an executable section (slot offsets in that section)."""

    name: str
    section: str
    offset: int
    insns: tuple[Insn, ...]
    slots: int
    is_global: bool


@dataclass(frozen=True)
class Placement:
    """Where a function's code sits in a linked program."""

    name: str
    section: str
    start: int  # slot index in the linked program
    section_offset: int  # slot index in its ELF section
    slots: int


@dataclass
class Program:
    """An entry point, linked with its subprograms, ready for the loader."""

    name: str
    section: str
    kind: SectionKind | None
    insns: list[Insn]
    map_refs: list[MapRef] = field(default_factory=list)
    functions: list[Placement] = field(default_factory=list)
    func_info: list[FuncInfo] = field(default_factory=list)
    line_info: list[LineInfo] = field(default_factory=list)
    core_relos_applied: int = 0
    # slots of the exits a pass inserted to abort (epass's bookkeeping, `.epass.aborts`);
    # `epass prove` lets the transformed program stop there (REFINES)
    aborts: list[int] = field(default_factory=list)

    def line_at(self, insn: int) -> LineInfo | None:
        """The source line that covers slot `insn` (the last line_info at or before it)."""
        best = None
        for li in self.line_info:
            if li.insn <= insn:
                best = li
            else:
                break
        return best

    def placement_of(self, insn: int) -> Placement | None:
        for p in self.functions:
            if p.start <= insn < p.start + p.slots:
                return p
        return None


@dataclass
class BpfObject:
    """A whole object file."""

    path: str
    license: str
    kern_version: int
    programs: list[Program]
    maps: list[MapDef]
    btf: Btf | None
    btf_raw: bytes | None  # fixed-up BTF, encoded, ready for BPF_BTF_LOAD
    functions: list[Function] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def program(self, name_or_section: str) -> Program:
        """A program by function name or section name (the first one in that section)."""
        for p in self.programs:
            if p.name == name_or_section:
                return p
        for p in self.programs:
            if p.section == name_or_section:
                return p
        names = ", ".join(f"{p.section}/{p.name}" for p in self.programs) or "none"
        raise ObjectError(
            f"no program or section named {name_or_section!r} (programs: {names})", file=self.path
        )

    def map(self, name: str) -> MapDef:
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)
