"""Register allocation on SSA: liveness, an interference graph, greedy colouring.

Values are coloured in dominance order. Each value first tries the register
it had in the original program (`Value.reg`), then the register of a value
it is copied from or to, then any free one. Because lifting keeps every
register's values in one web, an untouched program is coloured exactly as
clang allocated it and every copy inserted by `prepare` or out-of-SSA
disappears.

Rules the graph encodes besides liveness:
- a value live across a call or legacy packet load cannot be in r0-r5;
- an instruction's result and its operands other than the one it is
  written over (bytecode is two-address: `r1 += r2`) get different registers;
- fixed values (see `prepare`) are coloured first.

When no register is left, the value is spilled: stored to a new 8-byte
stack slot after its definition and reloaded before each use, then the
whole allocation runs again. Spill slots are placed below everything the
function already uses and must fit the 512-byte frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from epass.codegen.prepare import Constraints
from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.cfg import reverse_postorder
from epass.ir.model import FP, STACK_SIZE, Block, Function, Value
from epass.isa.opcodes import AluOp, AtomicOp

REGS = (1, 2, 3, 4, 5, 0, 6, 7, 8, 9)  # order tried when no preference applies
CALLEE_SAVED_FIRST = (6, 7, 8, 9, 1, 2, 3, 4, 5, 0)
MAX_ROUNDS = 200


@dataclass
class Allocation:
    color: dict[Value, int]
    live_in: dict[Block, set[Value]]
    live_out: dict[Block, set[Value]]
    live_params: dict[Block, set[Value]]  # parameters read before being overwritten
    spill_slots: int  # bytes of spill slots added below the frame
    frame_size: int  # bytes of stack the function uses, spill slots included


def tied_operand(inst: ir.Inst) -> int | None:
    """The operand whose register the result overwrites in bytecode, if any."""
    if isinstance(inst, ir.Alu):
        if inst.op in (AluOp.MOV, AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32):
            return None
        return 0
    if isinstance(inst, ir.Endian):
        return 0
    if isinstance(inst, ir.Atomic) and inst.result is not None and inst.op not in (
            AtomicOp.LOAD_ACQUIRE, AtomicOp.CMPXCHG):
        return 1
    return None


def allocate(func: Function, c: Constraints) -> Allocation:
    """Colour every value of `func`, spilling (and changing `func`) when needed."""
    spill_bytes = 0
    base = (func.frame_size() + 7) // 8 * 8
    for _ in range(MAX_ROUNDS):
        graph = _Graph(func, c)
        victim = graph.colour()
        if victim is None:
            return Allocation(graph.color, graph.live_in, graph.live_out, graph.live_params,
                              spill_bytes,
                              base + spill_bytes)
        spill_bytes += 8
        if base + spill_bytes > STACK_SIZE:
            raise IRError(f"function {func.name}: spilling needs {base + spill_bytes} bytes of "
                          f"stack, more than the {STACK_SIZE}-byte frame")
        _spill(func, c, victim, -(base + spill_bytes))
    raise IRError(f"function {func.name}: register allocation did not converge")


class _Graph:
    def __init__(self, func: Function, c: Constraints) -> None:
        self.func = func
        self.c = c
        self.adj: dict[Value, set[Value]] = {}
        self.forbid: dict[Value, set[int]] = {}
        self.partners: dict[Value, list[Value]] = {}
        self.edge_pairs: list[tuple[Value, Value]] = []  # block parameter, argument
        self.copy_pairs: list[tuple[Value, Value]] = []  # copy or two-address result, operand
        self.color: dict[Value, int] = {}
        self.live_params: dict[Block, set[Value]] = {}
        self._liveness()
        self._interference()

    def allocatable(self, v: object) -> bool:
        return isinstance(v, Value) and v not in self.c.undef

    def _uses(self, inst: ir.Inst) -> list[Value]:
        return [v for v in inst.operands if isinstance(v, Value) and v not in self.c.undef]

    def _liveness(self) -> None:
        blocks = self.func.blocks
        self.live_in = {b: set() for b in blocks}
        self.live_out = {b: set() for b in blocks}
        gen: dict[Block, set[Value]] = {}
        kill: dict[Block, set[Value]] = {}
        for b in blocks:
            g: set[Value] = set()
            k: set[Value] = set(b.params)
            for inst in b.insts:
                for v in self._uses(inst):
                    if v not in k:
                        g.add(v)
                if inst.result is not None:
                    k.add(inst.result)
            gen[b], kill[b] = g, k
        order = reverse_postorder(self.func)[::-1]
        changed = True
        while changed:
            changed = False
            for b in order:
                out: set[Value] = set()
                t = b.terminator
                for e in (t.edges if t is not None else []):
                    out |= self.live_in[e.target] - set(e.target.params)
                    out |= {a for a in e.args if self.allocatable(a)}
                new_in = gen[b] | (out - kill[b])
                if out != self.live_out[b] or new_in != self.live_in[b]:
                    self.live_out[b], self.live_in[b] = out, new_in
                    changed = True

    def edge(self, a: Value, b: Value) -> None:
        if a is b:
            return
        self.adj.setdefault(a, set()).add(b)
        self.adj.setdefault(b, set()).add(a)

    def partner(self, a: Value, b: ir.Operand, edge: bool = False) -> None:
        """`a` and `b` are copied into one another: one register for both saves a move."""
        if isinstance(b, Value) and self.allocatable(b) and a is not b:
            self.partners.setdefault(a, []).append(b)
            self.partners.setdefault(b, []).append(a)
            (self.edge_pairs if edge else self.copy_pairs).append((a, b))

    def _interference(self) -> None:
        for b in self.func.blocks:
            live = set(self.live_out[b])
            t = b.terminator
            for e in (t.edges if t is not None else []):
                for p, a in zip(e.target.params, e.args, strict=True):
                    self.partner(p, a, edge=True)
            for inst in reversed(b.insts):
                res = inst.result
                clobbers = self.c.clobbers.get(inst)
                if clobbers:
                    for v in live:
                        if v is not res:
                            self.forbid.setdefault(v, set()).update(clobbers)
                if res is not None and self.allocatable(res):
                    self.adj.setdefault(res, set())
                    source = inst.operands[0] if isinstance(inst, ir.Alu) and inst.is_copy \
                        else None
                    for v in live:
                        if v is not source:
                            self.edge(res, v)
                    tied = tied_operand(inst)
                    if tied is not None:
                        # `rd = ra; rd op= rb` must not overwrite rb before reading it
                        tied_value = inst.operands[tied]
                        for k, op in enumerate(inst.operands):
                            if k != tied and op is not tied_value and isinstance(op, Value) \
                                    and self.allocatable(op):
                                self.edge(res, op)
                    if source is not None:
                        self.partner(res, source)
                    elif tied is not None:
                        self.partner(res, inst.operands[tied])
                    live.discard(res)
                for v in self._uses(inst):
                    live.add(v)
            live_params = [p for p in b.params if p in live]
            self.live_params[b] = set(live_params)
            for p in live_params:
                self.adj.setdefault(p, set())
                for v in live:
                    self.edge(p, v)

    def order(self) -> list[Value]:
        out: list[Value] = []
        for b in reverse_postorder(self.func):
            out += [p for p in b.params if p in self.adj]
            out += [i.result for i in b.insts if i.result is not None and i.result in self.adj]
        return out

    def _webs(self) -> dict[Value, list[Value]]:
        """Coalesce: values joined by a copy or a block argument that do not interfere
        share one web, coloured as one. Block arguments first: their copies would sit on
        edges and may need a block of their own. Values the original program kept in
        different registers stay apart, so an untouched program comes back as it was."""
        parent: dict[Value, Value] = {}
        # per web root, kept up to date as webs join (recomputing them on each join made
        # a 33,000-value chain quadratic): members, neighbours of its members, the fixed
        # registers, the forbidden registers and the original's registers of its members
        members: dict[Value, list[Value]] = {}
        near: dict[Value, set[Value]] = {}
        fixed: dict[Value, set[int]] = {}
        forbid: dict[Value, set[int]] = {}
        regs: dict[Value, set[int]] = {}

        def find(v: Value) -> Value:
            while parent.get(v, v) is not v:
                v = parent[v]
            return v

        def web(root: Value) -> None:
            """Start the aggregates of a value that is still a web of its own."""
            if root not in members:
                members[root] = [root]
                near[root] = set(self.adj[root])
                fixed[root] = {self.c.fixed[root]} if root in self.c.fixed else set()
                forbid[root] = set(self.forbid.get(root, set()))
                regs[root] = {root.reg} if root.reg is not None else set()

        for a, b in self.edge_pairs + self.copy_pairs:
            if a not in self.adj or b not in self.adj:
                continue
            ra, rb = find(a), find(b)
            if ra is rb:
                continue
            web(ra)
            web(rb)
            if any(m in near[ra] for m in members[rb]):
                continue  # they interfere
            fa, fb = fixed[ra], fixed[rb]
            if len(fa | fb) > 1 or (fa & forbid[rb]) or (fb & forbid[ra]):
                continue
            if len(regs[ra] | regs[rb]) > 1:
                continue  # the original kept them in two registers: keep its choice
            parent[rb] = ra
            members[ra] += members.pop(rb)
            near[ra] |= near.pop(rb)
            fixed[ra] |= fixed.pop(rb)
            forbid[ra] |= forbid.pop(rb)
            regs[ra] |= regs.pop(rb)
        return {v: members.get(find(v), [v]) for v in self.adj}

    def colour(self) -> Value | None:
        """Colour all values, web by web; returns a value to spill when that fails."""
        webs = self._webs()
        for v, reg in self.c.fixed.items():
            if v in self.adj:
                self.color[v] = reg  # its web follows when reached, if nothing interferes
        for v in self.order():
            if v in self.color:
                continue
            web = [m for m in webs[v] if m not in self.color]
            choice = self._choose(web, v)
            if choice is None and len(web) > 1:
                web = [v]  # the web as a whole does not fit: colour this value alone
                choice = self._choose(web, v)
            if choice is None:
                return self._victim(v)
            for m in web:
                self.color[m] = choice
        return None

    def _choose(self, web: list[Value], v: Value) -> int | None:
        taken: set[int] = set()
        forbid: set[int] = set()
        for m in web:
            taken |= {self.color[n] for n in self.adj[m] if n in self.color}
            forbid |= self.forbid.get(m, set())
        taken |= forbid
        prefs = [v.reg] if v.reg is not None else []
        prefs += [m.reg for m in web if m.reg is not None]
        prefs += [self.color[p] for m in web for p in self.partners.get(m, [])
                  if p in self.color]
        fallback = CALLEE_SAVED_FIRST if forbid else REGS
        return next((r for r in prefs + list(fallback) if r not in taken and 0 <= r <= 9),
                    None)

    def _victim(self, v: Value) -> Value:
        """What to spill when `v` finds no register. The values holding registers across
        v's definition are what crowd it out; of those, the one used again furthest away
        frees its register the longest (Belady). `v` itself only when none of them can go."""
        pos = self._positions()
        here = pos.get(v.definition, 0)  # type: ignore[arg-type]
        # only a neighbour holding a register `v` could take frees one for it
        allowed = set(range(10)) - self.forbid.get(v, set())
        candidates = [n for n in self.adj[v] if n in self.color and n not in self.c.fixed
                      and n not in self.c.no_spill and self.color[n] in allowed]
        if candidates:
            def next_use(n: Value) -> int:
                later = [pos[u] for u in n.uses if pos.get(u, -1) > here]
                return min(later) if later else 1 << 30
            return max(candidates, key=lambda n: (next_use(n), -n.id))
        if v not in self.c.no_spill and v not in self.c.fixed:
            return v
        raise IRError(f"function {self.func.name}: no register is left for {v!r} "
                      "and nothing can be spilled")

    def _positions(self) -> dict[object, int]:
        """Instructions (and blocks, for their parameters) numbered in dominance order."""
        out: dict[object, int] = {}
        n = 0
        for b in reverse_postorder(self.func):
            out[b] = n
            for inst in b.insts:
                n += 1
                out[inst] = n
        return out


def _spill(func: Function, c: Constraints, v: Value, offset: int) -> None:
    """Store `v` to the stack slot at `offset` after its definition; reload it at each use."""
    c.no_spill.add(v)  # what is left of it (definition to store) cannot shrink further
    d = v.definition
    store = ir.Store(8, FP, offset, v)
    if isinstance(d, Block):
        d.insert(0, store)
    else:
        assert d is not None and d.block is not None
        d.block.insert(d.block.insts.index(d) + 1, store)
    for user in list(dict.fromkeys(v.uses)):
        if user is store:
            continue
        assert user.block is not None
        reload = func.new_value(v.reg)
        c.no_spill.add(reload)
        user.block.insert(user.block.insts.index(user), ir.Load(8, FP, offset, reload))
        user.replace_value(v, reload)
