"""Lift a linked `Program` into SSA: one `Function` per placed function.

SSA is built on the fly (Braun et al., "Simple and Efficient Construction
of Static Single Assignment Form", CC 2013): registers are variables, a
join gets a parameter only when a register read reaches it, and a parameter
whose arguments are all one value is removed again, so the form is minimal.
Parameters are collected on the side while building and turned into block
parameters and edge arguments at the end, in one order.

Unreachable code is dropped (the kernel rejects it anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.model import FP, Block, Edge, Function, Module, Value
from epass.isa import insn as isa
from epass.isa.helpers import helper_arg_count
from epass.isa.insn import slot_count
from epass.isa.opcodes import AluOp, AtomicOp, CallKind, PacketMode, PseudoKind
from epass.obj.model import Program

ARG_REGS = (1, 2, 3, 4, 5)
FETCH_RESULT = {AtomicOp.FETCH_ADD, AtomicOp.FETCH_OR, AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR,
                AtomicOp.XCHG}
KFUNC_ARGS = 5  # kfunc prototypes live in BTF; every argument register is passed
_CLOBBERED = Value(-1)  # marks r1-r5 after a call while lifting; never in the IR


def lift_program(program: Program, maps: list | None = None, path: str | None = None,
                 entry_args: int = 1) -> Module:
    """Lift every function of `program`; raises IRError naming what cannot be lifted.

    `entry_args`: registers holding arguments when the entry starts (1: the context;
    bpf_conformance programs get 2, memory and its length)."""
    try:
        return _Lifter(program, entry_args).run(maps or [])
    except IRError as e:
        raise e.at(file=path, section=program.section) from None


@dataclass
class _FuncCode:
    name: str
    start: int  # slot index in the program
    slots: int
    insns: list[tuple[int, isa.Insn]]  # (slot, instruction)


class _Lifter:
    def __init__(self, program: Program, entry_args: int) -> None:
        self.program = program
        self.entry_args = entry_args
        self.funcs: list[_FuncCode] = []
        slots = []
        pos = 0
        for insn in program.insns:
            slots.append((pos, insn))
            pos += slot_count(insn)
        placements = program.functions or []
        if not placements:
            from epass.obj.model import Placement
            placements = [Placement(program.name, program.section, 0, 0, pos)]
        for p in placements:
            body = [(s, i) for s, i in slots if p.start <= s < p.start + p.slots]
            self.funcs.append(_FuncCode(p.name, p.start, p.slots, body))
        self.func_at = {f.start: f for f in self.funcs}
        self.map_refs = {r.insn: r for r in program.map_refs}
        self.lines = {li.insn: li for li in program.line_info}
        self.type_ids = {fi.insn: fi.type_id for fi in program.func_info}

    def run(self, maps: list) -> Module:
        self.arity = _arities(self)
        functions = []
        for i, code in enumerate(self.funcs):
            f = _FunctionLifter(self, code, is_main=(i == 0)).run()
            functions.append(f)
        return Module(self.program.name, self.program.section, self.program.kind, functions,
                      maps=list(maps), source=self.program)

    def callee(self, slot: int, offset: int) -> _FuncCode:
        target = slot + 1 + offset
        func = self.func_at.get(target)
        if func is None:
            raise IRError(f"call or function pointer to slot {target}, where no function starts",
                          index=slot)
        return func


# ------------------------------------------------------------------ register use of bytecode


def _reads_writes(insn: isa.Insn, arity: int) -> tuple[set[int], set[int]]:
    """Registers (0..9) an instruction reads and writes; `arity`: arguments of a call."""
    match insn:
        case isa.Alu(op=op, dst=d, src=s):
            reads = set() if op in (AluOp.MOV, AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32) \
                else {d}
            if s is not None:
                reads.add(s)
            return reads, {d}
        case isa.Endian(dst=d):
            return {d}, {d}
        case isa.Jump(dst=d, src=s):
            return {d} | ({s} if s is not None else set()), set()
        case isa.Load(dst=d, src=s):
            return {s}, {d}
        case isa.Store(dst=d, src=s):
            return {d} | ({s} if s is not None else set()), set()
        case isa.Atomic(op=op, dst=d, src=s):
            if op == AtomicOp.LOAD_ACQUIRE:
                return {s}, {d}
            if op == AtomicOp.CMPXCHG:
                return {d, s, 0}, {0}
            return {d, s}, ({s} if op in FETCH_RESULT else set())
        case isa.LoadImm64(dst=d):
            return set(), {d}
        case isa.Call():
            return set(range(1, arity + 1)), {0, 1, 2, 3, 4, 5}
        case isa.LoadPacket(mode=mode, src=s):
            return {6} | ({s} if mode == PacketMode.IND else set()), {0, 1, 2, 3, 4, 5}
        case isa.Exit():
            return {0}, set()
    return set(), set()


def _call_arity(lifter: _Lifter, slot: int, insn: isa.Call, arity: dict[str, int]) -> int:
    if insn.kind == CallKind.LOCAL:
        return arity.get(lifter.callee(slot, insn.imm).name, 0)
    if insn.kind == CallKind.KFUNC:
        return KFUNC_ARGS
    return helper_arg_count(insn.imm)


def _arities(lifter: _Lifter) -> dict[str, int]:
    """How many of r1-r5 each subprogram reads before writing (its argument count)."""
    arity = {f.name: 0 for f in lifter.funcs}
    changed = True
    while changed:  # calls make arities depend on each other: iterate to the fixed point
        changed = False
        for f in lifter.funcs[1:]:
            live = _live_in_at_entry(lifter, f, arity)
            n = max((r for r in live if r in ARG_REGS), default=0)
            if n > arity[f.name]:
                arity[f.name] = n
                changed = True
    return arity


def _live_in_at_entry(lifter: _Lifter, f: _FuncCode, arity: dict[str, int]) -> set[int]:
    index = {slot: i for i, (slot, _) in enumerate(f.insns)}
    live_in: list[set[int]] = [set() for _ in f.insns]
    changed = True
    while changed:
        changed = False
        for i in range(len(f.insns) - 1, -1, -1):
            slot, insn = f.insns[i]
            succs = []
            nxt = i + 1 if i + 1 < len(f.insns) else None
            off = isa.jump_offset(insn)
            if isinstance(insn, isa.Jump | isa.MayGoto):
                succs = [nxt, index.get(slot + 1 + insn.off)]
            elif isinstance(insn, isa.Goto):
                succs = [index.get(slot + 1 + off)] if off is not None else []
            elif not isinstance(insn, isa.Exit):
                succs = [nxt]
            out: set[int] = set()
            for s in succs:
                if s is not None:
                    out |= live_in[s]
            n = _call_arity(lifter, slot, insn, arity) if isinstance(insn, isa.Call) else 0
            reads, writes = _reads_writes(insn, n)
            new = reads | (out - writes)
            if new != live_in[i]:
                live_in[i] = new
                changed = True
    return live_in[0] if live_in else set()


# ------------------------------------------------------------------ one function


class _FunctionLifter:
    def __init__(self, lifter: _Lifter, code: _FuncCode, is_main: bool) -> None:
        self.lifter = lifter
        self.code = code
        self.func = Function(code.name, is_main=is_main)
        self.func.arg_count = lifter.entry_args if is_main else lifter.arity[code.name]
        self.func.type_id = lifter.type_ids.get(code.start, 0)
        placement = next((p for p in lifter.program.functions if p.start == code.start), None)
        self.func.section = placement.section if placement else lifter.program.section
        # SSA construction state
        self.defs: dict[Block, dict[int, Value]] = {}
        self.sealed: set[Block] = set()
        self.filled: set[Block] = set()
        self.incomplete: dict[Block, dict[int, Value]] = {}
        self.phi_args: dict[Value, dict[int, Value]] = {}  # param -> edge id -> value
        self.phi_users: dict[Value, set[Value]] = {}
        self.phi_order: dict[Block, list[Value]] = {}
        self.replaced: dict[Value, Value] = {}
        self.filling: set[Value] = set()  # parameters whose arguments are being read
        self.entry_values: dict[int, Value] = {}
        self.entry_defs: list[ir.Inst] = []
        self.in_edges: dict[Block, list[tuple[Block, Edge]]] = {}

    def fail(self, message: str, slot: int) -> IRError:
        return IRError(f"function {self.code.name}: {message}", index=slot)

    # --------------------------------------------------------------- blocks

    def run(self) -> Function:
        code = self.code
        if not code.insns:
            raise IRError(f"function {code.name} has no instructions", index=code.start)
        leaders, succ_slots = self._leaders()
        order = self._reachable(leaders, succ_slots)
        first = order[0]
        targets_first = any(first in s for s in succ_slots.values())
        entry = self.func.new_block()
        self.blocks: dict[int, Block] = {}
        if targets_first:
            self.blocks[first] = self.func.new_block()
        else:
            self.blocks[first] = entry
        for slot in sorted(order):
            if slot not in self.blocks:
                self.blocks[slot] = self.func.new_block()
        # layout: bytecode order, with a separate entry block first when needed
        self.func.blocks = ([entry] if targets_first else []) + [self.blocks[s]
                                                                    for s in sorted(order)]
        for b in self.func.blocks:
            self.defs[b] = {}
            self.in_edges[b] = []
        self.sealed.add(entry)
        if targets_first:
            self.filled.add(entry)
            t = ir.Jump(Edge(self.blocks[first]))
            entry.append(t)
            self.in_edges[self.blocks[first]].append((entry, t.edges[0]))
        self.pending_preds = {b: 0 for b in self.func.blocks}
        for s in order:
            for t in succ_slots[s]:
                self.pending_preds[self.blocks[t]] += 1
        if targets_first:
            self.pending_preds[self.blocks[first]] += 1
            self._filled(entry)
        rpo = self._rpo(first, succ_slots)
        for slot in rpo:
            self._lift_block(slot, leaders, succ_slots)
        self._finish()
        return self.func

    def _leaders(self) -> tuple[list[int], dict[int, list[int]]]:
        """Block start slots and, per block start, its successors' start slots."""
        code = self.code
        end = code.start + code.slots
        starts = {code.insns[0][0]}
        valid = {s for s, _ in code.insns}
        for slot, insn in code.insns:
            off = isa.jump_offset(insn)
            if isinstance(insn, isa.Jump | isa.Goto | isa.MayGoto):
                target = slot + 1 + (off or 0)
                if not code.start <= target < end or target not in valid:
                    raise self.fail(f"jump to slot {target}, outside the function or inside "
                                    "an instruction", slot)
                starts.add(target)
                starts.add(slot + 1)
            elif isinstance(insn, isa.Exit):
                starts.add(slot + 1)
            elif isinstance(insn, isa.CallReg):
                raise self.fail("callx (indirect call) cannot be lifted: the kernel rejects "
                                "it and its target is unknown", slot)
        leaders = sorted(s for s in starts if s in valid)
        succs: dict[int, list[int]] = {}
        for i, start in enumerate(leaders):
            stop = leaders[i + 1] if i + 1 < len(leaders) else end
            last_slot, last = [(s, x) for s, x in code.insns if start <= s < stop][-1]
            nxt = last_slot + slot_count(last)
            if isinstance(last, isa.Exit):
                succs[start] = []
            elif isinstance(last, isa.Goto):
                succs[start] = [last_slot + 1 + last.off]
            elif isinstance(last, isa.Jump | isa.MayGoto):
                if nxt >= end:
                    raise self.fail("the last instruction is a conditional jump: the "
                                    "function falls off its end", last_slot)
                succs[start] = [last_slot + 1 + last.off, nxt]
            else:
                if nxt >= end:
                    raise self.fail("the function falls off its end (no exit or jump)",
                                    last_slot)
                succs[start] = [nxt]
        return leaders, succs

    def _reachable(self, leaders: list[int], succs: dict[int, list[int]]) -> list[int]:
        seen = {leaders[0]}
        stack = [leaders[0]]
        while stack:
            for t in succs[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return [s for s in leaders if s in seen]

    def _rpo(self, first: int, succs: dict[int, list[int]]) -> list[int]:
        post: list[int] = []
        seen = {first}
        stack = [(first, iter(succs[first]))]
        while stack:
            node, it = stack[-1]
            for t in it:
                if t not in seen:
                    seen.add(t)
                    stack.append((t, iter(succs[t])))
                    break
            else:
                post.append(node)
                stack.pop()
        return post[::-1]

    def _filled(self, block: Block) -> None:
        self.filled.add(block)
        for s in block.successors:
            self.pending_preds[s] -= 1
            if self.pending_preds[s] == 0 and s not in self.sealed:
                self._seal(s)

    # --------------------------------------------------------------- SSA

    def write(self, reg: int, block: Block, value: Value) -> None:
        self.defs[block][reg] = value

    def resolve(self, v: Value) -> Value:
        while v in self.replaced:
            v = self.replaced[v]
        return v

    def read(self, reg: int, block: Block) -> Value:
        # walk up chains of single predecessors in a loop (a parser's thousand bounds
        # checks would otherwise recurse a thousand deep)
        chain = []
        while True:
            v = self.defs[block].get(reg)
            if v is _CLOBBERED:
                v = self.clobbered(reg)
                break
            if v is not None:
                v = self.resolve(v)
                break
            if block in self.sealed and len(self.in_edges[block]) == 1:
                chain.append(block)
                block = self.in_edges[block][0][0]
                continue
            v = self._read_here(reg, block)
            break
        for b in chain:
            self.write(reg, b, v)
        return v

    def _read_here(self, reg: int, block: Block) -> Value:
        """A read the block's own definitions cannot answer: a parameter, or the entry's."""
        if block not in self.sealed:
            v = self._new_phi(block, reg)
            self.incomplete.setdefault(block, {})[reg] = v
        elif not self.in_edges[block]:
            v = self.entry_value(reg)
        else:
            v = self._new_phi(block, reg)
            self.write(reg, block, v)
            v = self._add_phi_operands(reg, v)
        v = self.resolve(v)  # removing trivial parameters may have replaced it meanwhile
        self.write(reg, block, v)
        return v

    def entry_value(self, reg: int) -> Value:
        """The value of `reg` at function entry: an argument, or undefined."""
        if reg not in self.entry_values:
            v = self.func.new_value(reg)
            if 1 <= reg <= self.func.arg_count:
                inst: ir.Inst = ir.Arg(reg, v)
            else:
                inst = ir.Undef(v)
            self.entry_defs.append(inst)
            self.entry_values[reg] = v
        return self.entry_values[reg]

    def clobbered(self, reg: int) -> Value:
        """What a register holds after a call: nothing the program may read."""
        key = -1 - reg
        if key not in self.entry_values:
            v = self.func.new_value(reg)
            self.entry_defs.append(ir.Undef(v))
            self.entry_values[key] = v
        return self.entry_values[key]

    def _new_phi(self, block: Block, reg: int) -> Value:
        v = self.func.new_value(reg)
        v.definition = block
        self.phi_args[v] = {}
        self.phi_order.setdefault(block, []).append(v)
        return v

    def _add_phi_operands(self, reg: int, phi: Value) -> Value:
        self.filling.add(phi)
        for pred, edge in self.in_edges[phi.definition]:  # type: ignore[index]
            arg = self.read(reg, pred)
            self.phi_args[phi][id(edge)] = arg
            if arg in self.phi_args:
                self.phi_users.setdefault(arg, set()).add(phi)
        self.filling.discard(phi)
        return self._remove_trivial(phi)

    def _remove_trivial(self, phi: Value) -> Value:
        same: Value | None = None
        for arg in self.phi_args[phi].values():
            arg = self.resolve(arg)
            if arg is same or arg is phi:
                continue
            if same is not None:
                return phi  # merges at least two values: not trivial
            same = arg
        if same is None:
            same = self.entry_value(phi.reg or 0)  # unreachable or only self-references
        self.replaced[phi] = same
        phi.replace_all_uses(same)
        block = phi.definition
        self.phi_order[block].remove(phi)  # type: ignore[index]
        del self.phi_args[phi]
        users = self.phi_users.pop(phi, set())
        for user in users:
            # a parameter still collecting its arguments is judged once it has them all
            if user in self.phi_args and user not in self.filling:
                if same in self.phi_args:
                    self.phi_users.setdefault(same, set()).add(user)
                self._remove_trivial(user)
        return same

    def _seal(self, block: Block) -> None:
        for reg, phi in self.incomplete.pop(block, {}).items():
            self._add_phi_operands(reg, phi)
        self.sealed.add(block)

    def _finish(self) -> None:
        """Turn the surviving parameters into block parameters and edge arguments."""
        entry = self.func.entry
        for i, inst in enumerate(sorted(self.entry_defs, key=_entry_order)):
            entry.insert(i, inst)
        for block in self.func.blocks:
            params = [p for p in self.phi_order.get(block, []) if p in self.phi_args]
            for p in params:
                block.add_param(p)
            for pred, edge in self.in_edges[block]:
                term = pred.terminator
                assert term is not None
                for p in params:
                    term.add_edge_arg(edge, self.resolve(self.phi_args[p][id(edge)]))

    # --------------------------------------------------------------- instructions

    def _lift_block(self, start: int, leaders: list[int],
                    succs: dict[int, list[int]]) -> None:
        block = self.blocks[start]
        i = leaders.index(start)
        stop = leaders[i + 1] if i + 1 < len(leaders) else self.code.start + self.code.slots
        body = [(s, x) for s, x in self.code.insns if start <= s < stop]
        for slot, insn in body:
            self._lift(block, slot, insn, succs[start])
        if block.terminator is None:
            self._terminate(block, ir.Jump(Edge(self.blocks[succs[start][0]])))
        self._filled(block)

    def _terminate(self, block: Block, term: ir.Terminator) -> None:
        block.append(term)
        for e in term.edges:
            self.in_edges[e.target].append((block, e))

    def _src(self, block: Block, reg: int | None, imm: int) -> ir.Operand:
        if reg is None:
            return imm
        return FP if reg == 10 else self.read(reg, block)

    def _reg(self, block: Block, reg: int) -> ir.Operand:
        return FP if reg == 10 else self.read(reg, block)

    def _def(self, block: Block, reg: int, slot: int) -> Value:
        if reg == 10:
            raise self.fail("writes r10, the read-only frame pointer", slot)
        v = self.func.new_value(reg)
        self.write(reg, block, v)
        return v

    def _emit(self, block: Block, inst: ir.Inst, slot: int) -> None:
        inst.origin = slot
        inst.line = self.lifter.lines.get(slot)
        block.append(inst)

    def _lift(self, block: Block, slot: int, insn: isa.Insn, succs: list[int]) -> None:
        emit = self._emit
        match insn:
            case isa.Alu(op=op, dst=d, src=s, imm=imm, bits=bits):
                if op in ir.UNARY_ALU and op != AluOp.NEG:
                    operands = [self._src(block, s, imm)]
                elif op == AluOp.NEG:
                    operands = [self._reg(block, d)]
                else:
                    operands = [self._reg(block, d), self._src(block, s, imm)]
                emit(block, ir.Alu(op, bits, operands, self._def(block, d, slot)), slot)
            case isa.Endian(kind=kind, dst=d, bits=bits):
                emit(block, ir.Endian(kind, bits, self._reg(block, d),
                                      self._def(block, d, slot)), slot)
            case isa.Load(size=size, dst=d, src=s, off=off, signed=signed):
                base = self._reg(block, s)
                emit(block, ir.Load(size, base, off, self._def(block, d, slot), signed), slot)
            case isa.Store(size=size, dst=d, off=off, src=s, imm=imm):
                emit(block, ir.Store(size, self._reg(block, d), off, self._src(block, s, imm)),
                     slot)
            case isa.Atomic(op=op, size=size, dst=d, src=s, off=off):
                self._atomic(block, slot, op, size, d, s, off)
            case isa.LoadImm64():
                self._lddw(block, slot, insn)
            case isa.Call():
                self._call(block, slot, insn)
            case isa.LoadPacket(mode=mode, size=size, imm=imm, src=s):
                operands = [self.read(6, block)]
                if mode == PacketMode.IND:
                    operands.append(self._reg(block, s))
                result = self.func.new_value(0)
                emit(block, ir.LoadPacket(mode, size, imm, operands, result), slot)
                self._after_call(block, result)
            case isa.Jump(op=op, dst=d, src=s, imm=imm, bits=bits):
                a = self._reg(block, d)
                b = self._src(block, s, imm)
                term = ir.Branch(op, bits, a, b, Edge(self.blocks[succs[0]]),
                                 Edge(self.blocks[succs[1]]))
                term.origin, term.line = slot, self.lifter.lines.get(slot)
                self._terminate(block, term)
            case isa.Goto():
                term = ir.Jump(Edge(self.blocks[succs[0]]))
                term.origin, term.line = slot, self.lifter.lines.get(slot)
                self._terminate(block, term)
            case isa.MayGoto():
                term = ir.MayGoto(Edge(self.blocks[succs[0]]), Edge(self.blocks[succs[1]]))
                term.origin, term.line = slot, self.lifter.lines.get(slot)
                self._terminate(block, term)
            case isa.Exit():
                term = ir.Ret(self.read(0, block))
                term.origin, term.line = slot, self.lifter.lines.get(slot)
                self._terminate(block, term)
            case _:
                raise self.fail(f"cannot lift {type(insn).__name__}", slot)

    def _atomic(self, block: Block, slot: int, op: AtomicOp, size: int, d: int, s: int,
                off: int) -> None:
        if op == AtomicOp.LOAD_ACQUIRE:
            inst = ir.Atomic(op, size, off, [self._reg(block, s)], self._def(block, d, slot))
        elif op == AtomicOp.CMPXCHG:
            operands = [self._reg(block, d), self.read(0, block), self._reg(block, s)]
            inst = ir.Atomic(op, size, off, operands, self._def(block, 0, slot))
        else:
            operands = [self._reg(block, d), self._reg(block, s)]
            result = self._def(block, s, slot) if op in FETCH_RESULT else None
            inst = ir.Atomic(op, size, off, operands, result)
        self._emit(block, inst, slot)

    def _lddw(self, block: Block, slot: int, insn: isa.LoadImm64) -> None:
        ref = self.lifter.map_refs.get(slot)
        result = self._def(block, insn.dst, slot)
        if ref is not None:
            inst: ir.Inst = ir.LoadMap(ref.map, result, ref.value, ref.offset)
        elif insn.kind == PseudoKind.IMM:
            inst = ir.LoadImm(insn.imm, result)
        elif insn.kind == PseudoKind.FUNC:
            inst = ir.LoadFunc(self.lifter.callee(slot, insn.imm).name, result)
        else:
            inst = ir.LoadPseudo(insn.kind, insn.imm, insn.aux, result)
        self._emit(block, inst, slot)

    def _call(self, block: Block, slot: int, insn: isa.Call) -> None:
        n = _call_arity(self.lifter, slot, insn, self.lifter.arity)
        args: list[ir.Operand] = [self.read(r, block) for r in range(1, n + 1)]
        target: int | str = insn.imm
        if insn.kind == CallKind.LOCAL:
            target = self.lifter.callee(slot, insn.imm).name
        result = self.func.new_value(0)
        self._emit(block, ir.Call(insn.kind, target, args, result, insn.off), slot)
        self._after_call(block, result)

    def _after_call(self, block: Block, result: Value) -> None:
        self.write(0, block, result)
        for r in ARG_REGS:
            self.write(r, block, _CLOBBERED)  # an undefined value is made only if it is read


def _entry_order(inst: ir.Inst) -> tuple[int, int]:
    """Arguments first (r1 first), then undefined registers."""
    if isinstance(inst, ir.Arg):
        return (0, inst.index)
    assert inst.result is not None
    return (1, inst.result.id)
