"""Read a clang-built BPF ELF object into a `BpfObject`.

The reader runs named phases -- elf, license, btf, symbols, maps, code,
relocations, core, link -- and every error it raises names the file, the
section and, where it applies, the instruction. Malformed input is an
`ObjectError` (one line, exit code 2), never a traceback.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from elftools.common.exceptions import ELFError, ELFParseError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import Section, SymbolTableSection

from epass.errors import BTFError, DecodeError, EpassError, ObjectError
from epass.isa import Call, CallKind, Insn, LoadImm64, PseudoKind, decode, slot_count
from epass.obj import maps as mapdefs
from epass.obj.btf import Btf, BtfFunc, BtfKind, fixup_datasecs, load_vmlinux_btf
from epass.obj.btf_ext import BtfExt
from epass.obj.core_patch import apply_core_relos
from epass.obj.model import BpfObject, FuncInfo, Function, MapDef, MapRef, Placement, Program
from epass.obj.sections import program_kind

EM_BPF = 247
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
# relocation types (include/uapi/linux/elf-em.h / LLVM BPF backend)
R_BPF_64_64 = 1  # lddw immediate
R_BPF_64_32 = 10  # call immediate
SHF_COMPRESSED = 0x800
SHT_NOBITS = 8
_SHDR_FIELDS = struct.Struct("<IQQQQ")  # Elf64_Shdr from sh_type: type, flags, addr, offset, size


@dataclass(frozen=True)
class Symbol:
    name: str
    section: str | None  # None: undefined (extern)
    value: int
    size: int
    kind: str  # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE
    bind: str  # STB_GLOBAL, STB_LOCAL, STB_WEAK
    visibility: str


@dataclass(frozen=True)
class Reloc:
    slot: int  # slot index in the section
    type: int
    symbol: Symbol


@dataclass
class _Code:
    """One executable section: its decoded instructions by slot."""

    name: str
    insns: dict[int, Insn]  # slot -> instruction, in slot order
    relocs: dict[int, Reloc]


def read_object(path: str) -> BpfObject:
    """Read a BPF object file; raises `ObjectError` naming what is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ObjectError(f"cannot read: {e.strerror}", file=path) from None
    return read_object_bytes(data, path)


def read_object_bytes(data: bytes, path: str) -> BpfObject:
    try:
        return _Reader(data, path).run()
    except EpassError as e:
        raise e.at(file=path) from None
    except (ELFError, ELFParseError, struct.error, UnicodeDecodeError, ValueError,
            OverflowError, zlib.error) as e:
        # pyelftools reports truncation and bad offsets this way
        raise ObjectError(f"malformed ELF file: {e}", file=path) from None


class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        self.warnings: list[str] = []

    # ---------------------------------------------------------------- phases

    def run(self) -> BpfObject:
        self.elf = self._open()
        self.sections = {s.name: s for s in self.elf.iter_sections()}
        license = self._license()
        kern_version = self._version()
        self.btf, self.btf_ext = self._btf()
        self.symbols = self._symbols()
        maps = self._maps()
        self.map_by_name = {m.name: m for m in maps}
        self.code = self._code()
        self._relocations()
        self._core()
        functions = self._functions()
        programs = self._programs(functions)
        self._aborts(programs)
        btf_raw = self._fixed_btf()
        maps = [mapdefs.with_vars(m, self.btf) for m in maps]  # offsets need the fixed BTF
        return BpfObject(
            path=self.path,
            license=license,
            kern_version=kern_version,
            programs=programs,
            maps=maps,
            btf=self.btf,
            btf_raw=btf_raw,
            functions=functions,
            warnings=self.warnings,
        )

    def _open(self) -> ELFFile:
        if len(self.data) < 4 or self.data[:4] != b"\x7fELF":
            raise ObjectError("not an ELF file (bad magic)")
        if len(self.data) < 64:
            raise ObjectError(f"truncated ELF file ({len(self.data)} bytes)")
        elf = ELFFile(io.BytesIO(self.data))
        if elf.elfclass != 64:
            raise ObjectError(f"not a BPF object: ELF class {elf.elfclass}, expected 64")
        if not elf.little_endian:
            raise ObjectError("big-endian BPF objects are not supported")
        machine = elf.header["e_machine"]
        if machine not in ("EM_BPF", EM_BPF):
            raise ObjectError(f"not a BPF object: machine is {machine}, expected EM_BPF")
        if elf.header["e_type"] != "ET_REL":
            raise ObjectError(
                f"not a BPF object file: ELF type {elf.header['e_type']}, expected ET_REL"
            )
        end = elf.header["e_shoff"] + elf.header["e_shnum"] * elf.header["e_shentsize"]
        if end > len(self.data):
            raise ObjectError(
                f"truncated ELF file: section headers end at {end}, file has {len(self.data)} bytes"
            )
        # check every section's bounds before reading names, which live in a section too
        for i in range(elf.num_sections()):
            at = elf.header["e_shoff"] + i * elf.header["e_shentsize"]
            sh_type, _, _, sh_offset, sh_size = _SHDR_FIELDS.unpack_from(self.data, at + 4)
            if sh_type != SHT_NOBITS and sh_offset + sh_size > len(self.data):
                raise ObjectError(f"truncated ELF file: section {self._name_of(elf, i)} ends "
                                  "past the end of the file")
        for s in elf.iter_sections():
            if s["sh_flags"] & SHF_COMPRESSED:
                raise ObjectError("compressed sections are not supported", section=s.name)
        return elf

    def _name_of(self, elf: ELFFile, index: int) -> str:
        """A section's name when it can be read safely, else its index."""
        try:
            return elf.get_section(index).name
        except (ELFError, ELFParseError, struct.error, UnicodeDecodeError, ValueError,
                OverflowError):
            return f"#{index}"

    def _license(self) -> str:
        sec = self.sections.get("license")
        if sec is None:
            return ""
        return sec.data().split(b"\0", 1)[0].decode("utf-8", "replace")

    def _version(self) -> int:
        sec = self.sections.get("version")
        if sec is None:
            return 0
        raw = sec.data()
        if len(raw) != 4:
            raise ObjectError(f"version section has {len(raw)} bytes, expected 4",
                              section="version")
        return struct.unpack("<I", raw)[0]

    def _btf(self) -> tuple[Btf | None, BtfExt | None]:
        sec = self.sections.get(".BTF")
        if sec is None:
            return None, None
        try:
            btf = Btf.parse(sec.data())
        except BTFError as e:
            raise e.at(section=".BTF") from None
        ext_sec = self.sections.get(".BTF.ext")
        if ext_sec is None:
            return btf, None
        try:
            return btf, BtfExt.parse(ext_sec.data(), btf)
        except BTFError as e:
            raise e.at(section=".BTF.ext") from None

    def _symbols(self) -> list[Symbol]:
        symtab = self.elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise ObjectError("no symbol table (.symtab)")
        out = []
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            section: str | None = None
            if isinstance(shndx, int) and shndx != SHN_UNDEF:
                if shndx >= self.elf.num_sections():
                    raise ObjectError(f"symbol {sym.name!r} points at section {shndx}, "
                                      f"which does not exist", section=".symtab")
                section = self.elf.get_section(shndx).name
            elif shndx in ("SHN_ABS", "SHN_COMMON"):
                section = str(shndx)
            name = sym.name
            if sym["st_info"]["type"] == "STT_SECTION":
                name = section or ""
            out.append(Symbol(name, section, sym["st_value"], sym["st_size"],
                              sym["st_info"]["type"], sym["st_info"]["bind"],
                              sym["st_other"]["visibility"]))
        return out

    def _maps(self) -> list[MapDef]:
        out: list[MapDef] = []
        if ".maps" in self.sections:
            if self.btf is None:
                raise ObjectError("BTF-defined maps need a .BTF section", section=".maps")
            out += mapdefs.btf_maps(self.btf, self.path)
        if "maps" in self.sections:
            syms = [(s.name, s.value) for s in self.symbols
                    if s.section == "maps" and s.kind != "STT_SECTION"]
            out += mapdefs.legacy_maps(self.sections["maps"].data(), syms, self.path)
        for name, sec in self.sections.items():
            if mapdefs.is_data_section(name) and sec["sh_size"] > 0:
                nobits = sec["sh_type"] == "SHT_NOBITS"
                contents = None if nobits else sec.data()
                out.append(mapdefs.data_map(name, sec["sh_size"], contents, self.btf))
        return out

    def _code(self) -> dict[str, _Code]:
        code = {}
        for name, sec in self.sections.items():
            if not (sec["sh_flags"] & SHF_EXECINSTR) or sec["sh_size"] == 0:
                continue
            if sec["sh_type"] != "SHT_PROGBITS":
                continue
            if name != ".text" and program_kind(name) is None:
                raise ObjectError(
                    "unknown program section: its name follows none of libbpf's "
                    "conventions (xdp, tc, socket, kprobe/..., tracepoint/..., ...)",
                    section=name,
                )
            try:
                insns = decode(sec.data())
            except DecodeError as e:
                raise e.at(section=name) from None
            by_slot: dict[int, Insn] = {}
            slot = 0
            for insn in insns:
                by_slot[slot] = insn
                slot += slot_count(insn)
            code[name] = _Code(name, by_slot, {})
        return code

    def _relocations(self) -> None:
        for sec in self.elf.iter_sections():
            if not isinstance(sec, RelocationSection):
                continue
            target = self.elf.get_section(sec["sh_info"]).name
            if target not in self.code:
                continue  # .BTF/.BTF.ext/.maps data relocations do not touch code
            symtab = self.elf.get_section(sec["sh_link"])
            for rel in sec.iter_relocations():
                offset, rtype = rel["r_offset"], rel["r_info_type"]
                if offset % 8:
                    raise ObjectError(f"relocation at byte {offset} is not on an instruction",
                                      section=target)
                slot = offset // 8
                if slot not in self.code[target].insns:
                    raise ObjectError("relocation points inside an instruction",
                                      section=target, index=slot)
                if rtype not in (R_BPF_64_64, R_BPF_64_32):
                    raise ObjectError(f"unsupported relocation type {rtype} for code",
                                      section=target, index=slot)
                symbol = self._symbol_for(symtab, rel["r_info_sym"], target, slot)
                self.code[target].relocs[slot] = Reloc(slot, rtype, symbol)

    def _symbol_for(self, symtab: Section, index: int, section: str, slot: int) -> Symbol:
        if not isinstance(symtab, SymbolTableSection) or index >= symtab.num_symbols():
            raise ObjectError(f"relocation refers to symbol {index}, which does not exist",
                              section=section, index=slot)
        return self.symbols[index]

    def _core(self) -> None:
        if self.btf_ext is None or not self.btf_ext.core_relos:
            return
        if self.btf is None:
            raise ObjectError("CO-RE relocations need a .BTF section", section=".BTF.ext")
        target = load_vmlinux_btf()
        for sec_name, relos in self.btf_ext.core_relos.items():
            if sec_name not in self.code:
                raise ObjectError(f"CO-RE relocations for section {sec_name!r}, which has no code",
                                  section=".BTF.ext")
            code = self.code[sec_name]
            try:
                apply_core_relos(code.insns, relos, self.btf, target)
            except EpassError as e:
                raise e.at(section=sec_name) from None
            code.insns = dict(sorted(code.insns.items()))

    def _functions(self) -> list[Function]:
        funcs = []
        for name, code in self.code.items():
            syms = sorted((s for s in self.symbols if s.section == name and s.kind == "STT_FUNC"),
                          key=lambda s: s.value)
            total = max(code.insns) + slot_count(code.insns[max(code.insns)])
            if not syms:
                # hand-written code without symbols: the whole section is one function
                syms = [Symbol(name, name, 0, total * 8, "STT_FUNC", "STB_GLOBAL", "STV_DEFAULT")]
            for sym in syms:
                start = sym.value // 8
                end = start + (sym.size // 8 if sym.size else total - start)
                if sym.value % 8 or start not in code.insns or end > total:
                    raise ObjectError(f"function {sym.name!r} does not start or end on an "
                                      "instruction", section=name)
                insns = tuple(code.insns[s] for s in code.insns if start <= s < end)
                funcs.append(Function(sym.name, name, start, insns, end - start,
                                      sym.bind != "STB_LOCAL"))
        return funcs

    def _programs(self, functions: list[Function]) -> list[Program]:
        self.func_at = {(f.section, f.offset): f for f in functions}
        programs = []
        for func in functions:
            # .text holds subprograms; a static function elsewhere is a subprogram too
            # (libbpf refuses such objects; we link it like one in .text)
            if func.section == ".text" or not func.is_global:
                continue
            programs.append(self._link(func))
        return programs

    # ---------------------------------------------------------------- linking

    def _link(self, entry: Function) -> Program:
        """Append every subprogram `entry` reaches and point calls at them (as libbpf does)."""
        prog = Program(entry.name, entry.section, program_kind(entry.section), [])
        placed: dict[tuple[str, int], int] = {}
        queue: list[Function] = []

        def place(func: Function) -> int:
            key = (func.section, func.offset)
            if key not in placed:
                start = sum(p.slots for p in prog.functions)
                placed[key] = start
                prog.functions.append(Placement(func.name, func.section, start, func.offset,
                                                func.slots))
                queue.append(func)
            return placed[key]

        place(entry)
        while queue:
            func = queue.pop(0)
            start = placed[(func.section, func.offset)]
            code = self.code[func.section]
            slot = func.offset
            for insn in func.insns:
                at = start + (slot - func.offset)
                prog.insns.append(self._relocate(prog, code, slot, at, insn, place))
                slot += slot_count(insn)
        self._attach_btf_ext(prog)
        return prog

    def _relocate(self, prog: Program, code: _Code, slot: int, at: int, insn: Insn,
                  place: Callable[[Function], int]) -> Insn:
        reloc = code.relocs.get(slot)

        def fail(message: str) -> ObjectError:
            return ObjectError(message, section=code.name, index=slot)

        if isinstance(insn, Call) and reloc is not None and reloc.symbol.section is None:
            return self._kfunc(reloc.symbol, fail)  # `extern ... __ksym` function
        if isinstance(insn, Call) and insn.kind == CallKind.LOCAL:
            if reloc is None:
                tsec, tslot = code.name, slot + insn.imm + 1
            else:
                tsec, tslot = reloc.symbol.section, reloc.symbol.value // 8 + insn.imm + 1
            target = self.func_at.get((tsec, tslot))
            if target is None:
                raise fail(f"call to slot {tslot} of section {tsec}, where no function starts")
            return replace(insn, imm=place(target) - (at + 1))
        if reloc is None:
            return insn
        sym = reloc.symbol
        if isinstance(insn, Call):
            raise fail(f"relocation against {sym.name!r} on a helper call")
        if not isinstance(insn, LoadImm64):
            raise fail(f"relocation against {sym.name!r} on an instruction that is not lddw")
        if sym.section is None:
            raise fail(f"extern symbol {sym.name!r} (__ksym/__kconfig) is not supported")
        if sym.section in self.code:
            # a function pointer (callback for bpf_loop, for_each_map_elem, ...)
            tslot = (sym.value + insn.imm) // 8
            target = self.func_at.get((sym.section, tslot))
            if target is None:
                raise fail(f"function pointer to slot {tslot} of {sym.section}, "
                           "where no function starts")
            return LoadImm64(insn.dst, place(target) - (at + 1), PseudoKind.FUNC)
        if sym.section in (".maps", "maps"):
            name = self._map_symbol(sym, fail)
            prog.map_refs.append(MapRef(at, name))
            return LoadImm64(insn.dst, 0)
        if mapdefs.is_data_section(sym.section):
            offset = insn.imm + (0 if sym.kind == "STT_SECTION" else sym.value)
            prog.map_refs.append(MapRef(at, sym.section, value=True, offset=offset))
            return LoadImm64(insn.dst, 0)
        raise fail(f"relocation against {sym.name!r} in section {sym.section}, "
                   "which is neither code, a map nor global data")

    def _map_symbol(self, sym: Symbol, fail: Callable[[str], ObjectError]) -> str:
        if sym.kind == "STT_SECTION":
            raise fail("map reference through a section symbol is not supported")
        if sym.name not in self.map_by_name:
            raise fail(f"reference to map {sym.name!r}, which is not defined")
        return sym.name

    def _kfunc(self, sym: Symbol, fail: Callable[[str], ObjectError]) -> Insn:
        ids = load_vmlinux_btf().find(BtfKind.FUNC, sym.name)
        if not ids:
            raise fail(f"kfunc {sym.name!r} is not in the running kernel's BTF")
        return Call(CallKind.KFUNC, ids[0])

    def _attach_btf_ext(self, prog: Program) -> None:
        ext = self.btf_ext
        if ext is None or self.btf is None:
            return
        for p in prog.functions:
            lo, hi = p.section_offset, p.section_offset + p.slots
            for fi in ext.func_info.get(p.section, []):
                if lo <= fi.insn < hi:
                    func = self.btf.type(fi.type_id)
                    name = func.name if isinstance(func, BtfFunc) else ""
                    prog.func_info.append(FuncInfo(fi.insn - lo + p.start, fi.type_id, name))
            for li in ext.line_info.get(p.section, []):
                if lo <= li.insn < hi:
                    prog.line_info.append(replace(li, insn=li.insn - lo + p.start))
            prog.core_relos_applied += sum(
                lo <= r.insn < hi for r in ext.core_relos.get(p.section, []))
        prog.func_info.sort(key=lambda f: f.insn)
        prog.line_info.sort(key=lambda li: li.insn)

    def _aborts(self, programs: list[Program]) -> None:
        """`.epass.aborts` (written by epass): the abort exits of each program."""
        sec = self.sections.get(".epass.aborts")
        if sec is None:
            return
        by_name = {p.name: p for p in programs}
        for line in sec.data().decode("ascii", "replace").splitlines():
            name, *slots = line.split()
            if name not in by_name or not all(s.isdigit() for s in slots):
                raise ObjectError(f"bad line {line!r}", section=".epass.aborts")
            by_name[name].aborts = [int(s) for s in slots]

    def _fixed_btf(self) -> bytes | None:
        if self.btf is None:
            return None
        sizes = {name: s["sh_size"] for name, s in self.sections.items()}
        offsets = {(s.section, s.name): s.value for s in self.symbols
                   if s.section is not None and s.kind == "STT_OBJECT"}
        hidden = {(s.section, s.name) for s in self.symbols
                  if s.section is not None and s.visibility in ("STV_HIDDEN", "STV_INTERNAL")}
        fixed = fixup_datasecs(self.btf, sizes, offsets, hidden_symbols=hidden,
                               warnings=self.warnings)
        self.btf = fixed
        return fixed.encode()
