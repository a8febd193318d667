"""Write an object file whose programs are replaced by new code.

    data = write_object(obj, {"xdp_prog": compiled_program, ...})

The output is the input object with only what the new code changes
rewritten, so libbpf and bpftool load it like the original:

- code sections: each entry function at its place in its section, the
  subprograms it calls in `.text`; a `.text` function no program reaches
  keeps its original code;
- their relocation sections: map references, calls into `.text`,
  function addresses and kfunc calls, against the same symbols clang used;
- `.symtab`: the functions' new offsets and sizes;
- `.BTF.ext`: func_info and line_info at the new offsets. CO-RE
  relocations were applied when the object was read (the code is for the
  running kernel), so the new code carries none;
- everything else (maps, global data, license, `.BTF`, DWARF) byte for byte.
  DWARF still describes the old code: BTF line info is what tools load.

Sections keep their indices; a missing `.rel<section>` is appended.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from epass.errors import ObjectError
from epass.isa import insn as isa
from epass.isa.codec import decode, encode
from epass.isa.opcodes import CallKind, PseudoKind
from epass.obj.btf import Btf, BtfKind, load_vmlinux_btf
from epass.obj.btf_ext import BtfExt, LineInfo
from epass.obj.maps import is_data_section
from epass.obj.model import BpfObject, Function, Program

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
R_BPF_64_64 = 1
R_BPF_64_32 = 10
SHT_REL = 9
SHT_PROGBITS = 1
ABORTS_SECTION = ".epass.aborts"
SHT_NOBITS = 8
SHF_INFO_LINK = 0x40
STT_SECTION = 3
STT_FUNC = 2
STT_OBJECT = 1
BTF_EXT_MAGIC = 0xEB9F


@dataclass
class _Section:
    name: str
    header: list[int]  # the 10 Elf64_Shdr fields
    data: bytes


@dataclass
class _Sym:
    index: int
    name: str
    shndx: int
    kind: int
    value: int


@dataclass
class _Chunk:
    """One function's code in the output, with relocations by slot."""

    function: Function
    insns: list[isa.Insn]
    relocs: list[tuple[int, int, int]] = field(default_factory=list)  # slot, type, sym index
    local_calls: list[tuple[int, str]] = field(default_factory=list)  # slot, callee in section
    func_addrs: list[tuple[int, str]] = field(default_factory=list)  # slot, function in .text
    # calls relocated against .text's section symbol: slot, callee (imm = its start - 1)
    section_calls: list[tuple[int, str]] = field(default_factory=list)
    lines: list[LineInfo] = field(default_factory=list)  # insn = slot in the chunk
    type_id: int = 0
    original: bool = False  # unchanged code: its records come from the input's .BTF.ext
    start: int = 0  # slot in its section, once placed


def write_object(obj: BpfObject, programs: dict[str, Program]) -> bytes:
    """The object `obj` (read from `obj.path`) with these programs' code, as ELF bytes."""
    try:
        with open(obj.path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ObjectError(f"cannot read: {e.strerror}", file=obj.path) from None
    return _Writer(obj, data, programs).run()


class _Writer:
    def __init__(self, obj: BpfObject, data: bytes, programs: dict[str, Program]) -> None:
        self.obj = obj
        self.data = data
        self.programs = programs

    def fail(self, message: str, section: str | None = None) -> ObjectError:
        return ObjectError(message, file=self.obj.path, section=section)

    def run(self) -> bytes:
        self._read()
        chunks = self._chunks()
        by_section: dict[str, list[_Chunk]] = {}
        for c in chunks:
            by_section.setdefault(c.function.section, []).append(c)
        for name, group in by_section.items():
            self._place(name, group)
        self.text_starts = {c.function.name: c.start for c in by_section.get(".text", [])}
        self._symbols(chunks)
        for name, group in by_section.items():
            self._code(name, group)
        self._btf_ext(by_section)
        self._aborts()
        return self._write()

    # ------------------------------------------------------------ input

    def _read(self) -> None:
        ehdr = _EHDR.unpack_from(self.data)
        self.ehdr = list(ehdr)
        shoff, shnum, shstrndx = ehdr[6], ehdr[12], ehdr[13]
        headers = [list(_SHDR.unpack_from(self.data, shoff + i * _SHDR.size))
                   for i in range(shnum)]
        names = headers[shstrndx]
        strtab = self.data[names[4]:names[4] + names[5]]
        self.sections: list[_Section] = []
        for h in headers:
            name = strtab[h[0]:strtab.index(b"\0", h[0])].decode()
            body = b"" if h[1] == SHT_NOBITS else self.data[h[4]:h[4] + h[5]]
            self.sections.append(_Section(name, h, body))
        self.index = {s.name: i for i, s in enumerate(self.sections)}
        self.shstrndx = shstrndx
        sym = self.sections[self.index[".symtab"]]
        symstr = self.sections[sym.header[6]].data
        self.symbols: list[_Sym] = []
        for i in range(len(sym.data) // _SYM.size):
            st_name, info, _, shndx, value, _ = _SYM.unpack_from(sym.data, i * _SYM.size)
            name = symstr[st_name:symstr.index(b"\0", st_name)].decode()
            self.symbols.append(_Sym(i, name, shndx, info & 0xF, value))

    def _symbol(self, section: str, name: str | None, kinds: tuple[int, ...]) -> _Sym | None:
        shndx = self.index.get(section)
        for s in self.symbols:
            if s.shndx == shndx and s.kind in kinds and (name is None or s.name == name):
                return s
        return None

    # ------------------------------------------------------------ code

    def _chunks(self) -> list[_Chunk]:
        entries = {(p.section, p.name) for p in self.obj.programs}
        out = []
        for f in sorted(self.obj.functions, key=lambda f: (self.index[f.section], f.offset)):
            compiled = []
            for p in self.programs.values():
                for pl in p.functions:
                    if pl.name == f.name and pl.section == f.section:
                        compiled.append(self._chunk(f, p, pl.start, pl.slots))
            if (f.section, f.name) in entries and f.name not in self.programs:
                compiled = []
            if not compiled:
                out.append(self._original(f))
                continue
            first = compiled[0]
            for other in compiled[1:]:
                if (other.insns, other.relocs, other.local_calls, other.func_addrs) != \
                    (first.insns, first.relocs, first.local_calls, first.func_addrs):
                    raise self.fail(f"subprogram {f.name} was compiled differently for two "
                                    "programs; one object cannot hold both", f.section)
            out.append(first)
        return out

    def _original(self, f: Function) -> _Chunk:
        """A function no compiled program covers: its code as in the file (before CO-RE,
        which libbpf applies again) and its relocations."""
        raw = self.sections[self.index[f.section]].data[f.offset * 8:(f.offset + f.slots) * 8]
        chunk = _Chunk(f, decode(raw), original=True)
        relocated = set()
        rel = self.index.get(".rel" + f.section)
        if rel is not None:
            body = self.sections[rel].data
            for i in range(len(body) // _REL.size):
                off, info = _REL.unpack_from(body, i * _REL.size)
                slot = off // 8 - f.offset
                if 0 <= slot < f.slots:
                    chunk.relocs.append((slot, info & 0xFFFFFFFF, info >> 32))
                    relocated.add(slot)
        starts = {g.offset: g.name for g in self.obj.functions if g.section == f.section}
        at = dict(zip(isa.slot_indices(chunk.insns), chunk.insns, strict=True))
        for slot, _, sym_index in chunk.relocs:
            # against a code section's symbol the target is in the immediate: the target
            # may move, so it is fixed up once the new layout is known
            sym = self.symbols[sym_index]
            target = self.sections[sym.shndx].name if sym.kind == STT_SECTION and \
                0 < sym.shndx < len(self.sections) else None
            if target is None or target not in {g.section for g in self.obj.functions}:
                continue
            insn = at[slot]
            old = insn.imm + 1 if isinstance(insn, isa.Call) else insn.imm // 8  # type: ignore
            callee = next((g.name for g in self.obj.functions
                           if g.section == target and g.offset == old), None)
            if callee is None:
                raise self.fail(f"{f.name} refers to slot {old} of {target}, where no "
                                "function starts", f.section)
            if isinstance(insn, isa.Call):
                chunk.section_calls.append((slot, callee))
            else:
                chunk.func_addrs.append((slot, callee))
        for slot, insn in zip(isa.slot_indices(chunk.insns), chunk.insns, strict=True):
            if isinstance(insn, isa.Call) and insn.kind == CallKind.LOCAL and \
                    slot not in relocated:
                callee = starts.get(f.offset + slot + 1 + insn.imm)
                if callee is None:
                    raise self.fail(f"{f.name} calls into the middle of a function", f.section)
                chunk.local_calls.append((slot, callee))
        return chunk

    def _chunk(self, f: Function, p: Program, start: int, slots: int) -> _Chunk:
        chunk = _Chunk(f, [])
        refs = {r.insn: r for r in p.map_refs}
        names = {pl.start: pl for pl in p.functions}
        pos = 0
        for insn in p.insns:
            if start <= pos < start + slots:
                chunk.insns.append(self._relocated(chunk, f, insn, pos - start, pos, refs,
                                                   names))
            pos += isa.slot_count(insn)
        chunk.lines = [replace(li, insn=li.insn - start) for li in p.line_info
                       if start <= li.insn < start + slots]
        chunk.type_id = next((fi.type_id for fi in p.func_info if fi.insn == start), 0)
        return chunk

    def _relocated(self, chunk: _Chunk, f: Function, insn: isa.Insn, slot: int, pos: int,
                   refs: dict, names: dict) -> isa.Insn:
        ref = refs.get(pos)
        if ref is not None:
            assert isinstance(insn, isa.LoadImm64)
            sym, imm = self._map_symbol(ref.map, ref.value, ref.offset, f.section)
            chunk.relocs.append((slot, R_BPF_64_64, sym.index))
            return isa.LoadImm64(insn.dst, imm)
        if isinstance(insn, isa.Call) and insn.kind == CallKind.LOCAL:
            callee = names[pos + 1 + insn.imm]
            if callee.section == f.section:
                chunk.local_calls.append((slot, callee.name))
                return isa.Call(CallKind.LOCAL, 0)  # the offset is set once laid out
            sym = self._func_symbol(callee.section, callee.name)
            chunk.relocs.append((slot, R_BPF_64_32, sym.index))
            return isa.Call(CallKind.LOCAL, -1)
        if isinstance(insn, isa.LoadImm64) and insn.kind == PseudoKind.FUNC:
            # libbpf wants the section symbol and the byte offset in the immediate
            callee = names[pos + 1 + insn.imm]
            sym = self._symbol(callee.section, None, (STT_SECTION,))
            if sym is None:
                raise self.fail(f"no section symbol for {callee.section} to take the "
                                f"address of {callee.name}", f.section)
            chunk.relocs.append((slot, R_BPF_64_64, sym.index))
            chunk.func_addrs.append((slot, callee.name))
            return isa.LoadImm64(insn.dst, 0)
        if isinstance(insn, isa.Call) and insn.kind == CallKind.KFUNC:
            sym = self._kfunc_symbol(insn.imm, f.section)
            chunk.relocs.append((slot, R_BPF_64_32, sym.index))
            return isa.Call(CallKind.LOCAL, -1)
        return insn

    def _map_symbol(self, name: str, value: bool, offset: int, section: str) -> tuple[_Sym, int]:
        if all(m.name != name for m in self.obj.maps):
            raise self.fail(f"map {name!r} was added by a pass; objects with pass-created "
                            "maps cannot be written yet", section)
        if not value:
            sym = self._symbol(".maps", name, (STT_OBJECT,)) or \
                self._symbol("maps", name, (STT_OBJECT,))
            if sym is None:
                raise self.fail(f"map {name!r} has no symbol to relocate against", section)
            return sym, 0
        if not is_data_section(name):
            raise self.fail(f"a pointer into map {name!r}: only global data has symbols",
                            section)
        sym = self._symbol(name, None, (STT_SECTION,))
        if sym is not None:
            return sym, offset
        candidates = [s for s in self.symbols if s.shndx == self.index.get(name)
                      and s.kind == STT_OBJECT and s.value <= offset]
        if not candidates:
            raise self.fail(f"no symbol in {name} to relocate against", section)
        sym = max(candidates, key=lambda s: s.value)
        return sym, offset - sym.value

    def _func_symbol(self, section: str, name: str) -> _Sym:
        sym = self._symbol(section, name, (STT_FUNC,))
        if sym is None:
            raise self.fail(f"function {name} has no symbol in {section}", section)
        return sym

    def _kfunc_symbol(self, btf_id: int, section: str) -> _Sym:
        vmlinux = load_vmlinux_btf()
        for s in self.symbols:
            if s.shndx == 0 and s.name and btf_id in vmlinux.find(BtfKind.FUNC, s.name):
                return s
        raise self.fail(f"kfunc with BTF id {btf_id} has no extern symbol", section)

    def _place(self, section: str, chunks: list[_Chunk]) -> None:
        pos = 0
        for c in chunks:
            c.start = pos
            pos += sum(isa.slot_count(i) for i in c.insns)

    def _symbols(self, chunks: list[_Chunk]) -> None:
        sym = self.sections[self.index[".symtab"]]
        body = bytearray(sym.data)
        for c in chunks:
            s = self._func_symbol(c.function.section, c.function.name)
            size = sum(isa.slot_count(i) for i in c.insns) * 8
            at = s.index * _SYM.size
            fields = list(_SYM.unpack_from(body, at))
            fields[4], fields[5] = c.start * 8, size
            _SYM.pack_into(body, at, *fields)
        sym.data = bytes(body)

    def _code(self, section: str, chunks: list[_Chunk]) -> None:
        starts = {c.function.name: c.start for c in chunks}
        insns: list[isa.Insn] = []
        rels: list[tuple[int, int, int]] = []
        for c in chunks:
            code = list(c.insns)
            slots = isa.slot_indices(code)
            for slot, callee in c.local_calls:
                i = slots.index(slot)
                code[i] = isa.Call(CallKind.LOCAL, starts[callee] - (c.start + slot + 1))
            for slot, callee in c.func_addrs:
                i = slots.index(slot)
                code[i] = replace(code[i], imm=self.text_starts[callee] * 8)
            for slot, callee in c.section_calls:
                i = slots.index(slot)
                code[i] = replace(code[i], imm=self.text_starts[callee] - 1)
            insns += code
            rels += [(c.start + slot, t, s) for slot, t, s in c.relocs]
        self.sections[self.index[section]].data = encode(insns)
        body = b"".join(_REL.pack(slot * 8, (sym << 32) | t) for slot, t, sym in sorted(rels))
        rel = self.index.get(".rel" + section)
        if rel is not None:
            self.sections[rel].data = body
        elif body:
            self._add_rel_section(section, body)

    def _aborts(self) -> None:
        """`.epass.aborts`: per program, the slots of the exits passes inserted to abort
        (one line `name slot slot ...`), so that `epass prove` can read them back."""
        lines = [f"{name} {' '.join(map(str, p.aborts))}\n"
                 for name, p in self.programs.items() if p.aborts]
        body = "".join(lines).encode()
        at = self.index.get(ABORTS_SECTION)
        if at is not None:
            self.sections[at].data = body
        elif body:
            names = self.sections[self.shstrndx]
            name_off = len(names.data)
            names.data += ABORTS_SECTION.encode() + b"\0"
            header = [name_off, SHT_PROGBITS, 0, 0, 0, 0, 0, 0, 1, 0]
            self.sections.append(_Section(ABORTS_SECTION, header, body))
            self.index[ABORTS_SECTION] = len(self.sections) - 1

    def _add_rel_section(self, section: str, body: bytes) -> None:
        names = self.sections[self.shstrndx]
        name_off = len(names.data)
        names.data += (".rel" + section).encode() + b"\0"
        header = [name_off, SHT_REL, SHF_INFO_LINK, 0, 0, 0, self.index[".symtab"],
                  self.index[section], 8, _REL.size]
        self.sections.append(_Section(".rel" + section, header, body))
        self.index[".rel" + section] = len(self.sections) - 1

    # ------------------------------------------------------------ BTF.ext

    def _btf_ext(self, by_section: dict[str, list[_Chunk]]) -> None:
        at = self.index.get(".BTF.ext")
        if at is None or ".BTF" not in self.index:
            return
        btf = Btf.parse(self.sections[self.index[".BTF"]].data)
        old = BtfExt.parse(self.sections[at].data, btf)
        funcs: list[tuple[str, list[bytes]]] = []
        lines: list[tuple[str, list[bytes]]] = []
        cores: list[tuple[str, list[bytes]]] = []
        for section, chunks in by_section.items():
            f_recs, l_recs, c_recs = [], [], []
            for c in chunks:
                f = c.function
                base = c.start * 8
                if c.original:
                    lo, hi = f.offset, f.offset + f.slots
                    for fi in old.func_info.get(section, []):
                        if lo <= fi.insn < hi:
                            f_recs.append(struct.pack("<II", base + (fi.insn - lo) * 8,
                                                      fi.type_id))
                    for li in old.line_info.get(section, []):
                        if lo <= li.insn < hi:
                            l_recs.append(_line(li, base + (li.insn - lo) * 8))
                    c_recs += self._core_records(section, old, lo, hi, base)
                    continue
                if c.type_id:
                    f_recs.append(struct.pack("<II", base, c.type_id))
                l_recs += [_line(li, base + li.insn * 8) for li in c.lines]
            name_off = _string_offset(btf, section)
            if name_off is None:
                if f_recs or l_recs:
                    raise self.fail(f"the BTF has no string for section name {section!r}",
                                    ".BTF.ext")
                continue
            for out, recs in ((funcs, f_recs), (lines, l_recs), (cores, c_recs)):
                if recs:
                    out.append((section, recs))
        self.sections[at].data = _encode_ext(btf, funcs, lines, cores)
        rel = self.index.get(".rel.BTF.ext")
        if rel is not None:
            self.sections[rel].data = b""  # DWARF-style offsets of the old layout: not needed

    def _core_records(self, section: str, old: BtfExt, lo: int, hi: int,
                      base: int) -> list[bytes]:
        recs = []
        btf = Btf.parse(self.sections[self.index[".BTF"]].data)
        for r in old.core_relos.get(section, []):
            if lo <= r.insn < hi:
                access = _string_offset(btf, r.access_str)
                recs.append(struct.pack("<IIII", base + (r.insn - lo) * 8, r.type_id,
                                        access or 0, int(r.kind)))
        return recs

    # ------------------------------------------------------------ output

    def _write(self) -> bytes:
        out = bytearray(_EHDR.size)
        headers = []
        for i, s in enumerate(self.sections):
            h = list(s.header)
            if i == 0:
                headers.append(h)
                continue
            align = max(h[8], 1)
            if h[1] != SHT_NOBITS:
                out += b"\0" * (-len(out) % align)
                h[4] = len(out)
                h[5] = len(s.data)
                out += s.data
            headers.append(h)
        out += b"\0" * (-len(out) % 8)
        shoff = len(out)
        for h in headers:
            out += _SHDR.pack(*h)
        ehdr = list(self.ehdr)
        ehdr[6] = shoff
        ehdr[12] = len(headers)
        _EHDR.pack_into(out, 0, *ehdr)
        return bytes(out)


def _line(li: LineInfo, insn_off: int) -> bytes:
    return struct.pack("<IIII", insn_off, li.file_name_off, li.line_off, li.packed_line_col)


def _string_offset(btf: Btf, s: str) -> int | None:
    raw = btf.strings
    needle = s.encode()
    if raw.startswith(needle + b"\0"):
        return 0
    at = raw.find(b"\0" + needle + b"\0")
    return None if at < 0 else at + 1


def _encode_ext(btf: Btf, *blocks: list[tuple[str, list[bytes]]]) -> bytes:
    """`.BTF.ext` with func_info, line_info and core_relo blocks (32-byte header)."""
    bodies = []
    for block, rec_size in zip(blocks, (8, 16, 16), strict=True):
        if not block:
            bodies.append(b"")
            continue
        part = bytearray(struct.pack("<I", rec_size))
        for section, recs in block:
            part += struct.pack("<II", _string_offset(btf, section) or 0, len(recs))
            part += b"".join(recs)
        bodies.append(bytes(part))
    header_len = 32
    offsets = []
    pos = 0
    for b in bodies:
        offsets += [pos, len(b)]
        pos += len(b)
    header = struct.pack("<HBBIIIIIII", BTF_EXT_MAGIC, 1, 0, header_len, *offsets)
    return header + b"".join(bodies)
