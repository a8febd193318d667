"""loops: get the verifier through loops it cannot see the end of, or walks too long.

Answers three messages, with three rewrites (epass/ir/loops.py makes them):

- "infinite loop detected at insn N" and "BPF program is too large. Processed 1000001
  insn": **counters**. The verifier meets a loop state it saw before (the loop's
  counter lives in memory it does not track), or walks a loop whose end it cannot see
  (each round only lowers a bound by one). Every loop gets a counter in a register (0 on
  entry, +1 per back edge) and `if count >= bound goto abort` at its header, with a
  provisional bound; the verifier runs once, and only loops whose abort it reached (it
  drove them to the limit) keep a counter. Their final bound is what the instruction
  budget left by that run allows, and the candidate reports it per loop.
- "BPF program is too large": **widening**. A loop-carried constant the verifier tracks
  exactly (a second induction variable, `i` next to `off`) makes every trip's state new.
  Its entry value `c` becomes `(fp - fp) + c`: the same number, unknown to the verifier
  (pointer minus pointer), so it prunes states that differ only there. Kept when the
  verifier accepts the trial.
- "The sequence of N jumps is too complex": **latch first**. The verifier walks a
  branch's fall-through first and queues the target; a loop body that falls through into
  the long way and queues the short way back (a mismatch in a byte compare) queues one
  state per compare per trip. Branches whose two successors stay in the loop are turned
  (condition negated, targets swapped) so the verifier follows the way back first; the
  queued states then meet states seen at the header and are pruned.

Why behaviour is kept (what Z3 must prove): latch first and widening change no value on
any path (the same comparisons, `fp - fp` is 0), and keep the loop structure and the
registers, so loop pairing proves them. A counter only adds an abort: it changes
behaviour only if a run reaches the bound, so the proof must show no run does (Z3 shows
the paths past the loop's real trip count cannot be taken; epass/smt/prove.py tries
shallower unroll bounds until the paths they cut off are infeasible).
"""

from __future__ import annotations

from collections.abc import Callable

from epass.codegen import compile_module
from epass.errors import EpassError
from epass.ir import loops as L
from epass.ir.lift import lift_program
from epass.ir.model import Module
from epass.kernel.loader import ProgramLoad, open_object
from epass.kernel.verifier_log import INSN_RE, ErrorClass, parse_log
from epass.obj.model import Program
from epass.repair.site import Site
from epass.repair.strategies import Candidate, Strategy, register

PROVISIONAL = 256  # the trial's bound on every loop
BUDGET = 100_000  # verifier instructions the final bounds may spend (the limit is 1M)
MAX_BOUND = 65_536
TRACE_LIMIT = 100_000  # a trial walk longer than this gets no level-2 trace
MAX_WIDEN_TRIALS = 8  # loop-carried constants tried (each trial is one verification)

Plan = list[tuple[tuple[str, int], int]]  # (loop, bound)


def _loops(site: Site, module: Module) -> list[L.Loop]:
    """The loops around the rejected instruction, innermost last; all loops when none is
    (or the error names no instruction)."""
    every = L.module_loops(module)
    around = [lp for lp in every if site.inst.block in lp.body]
    return around if site.error.insn is not None and around else every


def _trial(site: Site, edit: Callable[[Module], None],
           trace: bool) -> tuple[ProgramLoad, Program] | None:
    """Lift afresh, `edit(module)`, compile and verify (statistics only, then the level-2
    trace when asked for and the walk was short)."""
    module = lift_program(site.program, site.obj.maps)
    try:
        edit(module)
        program = compile_module(module)
    except EpassError:
        return None
    with open_object(site.obj) as loaded:
        load = loaded.load_program(program, log_level=0)
        processed = parse_log(load.log).processed_insns or 0
        if trace and processed <= TRACE_LIMIT:
            load = loaded.load_program(program, log_level=2)
    return load, program


def counter_plan(site: Site) -> Plan | None:
    """Which loops keep a counter, and their bounds: from a trial with a provisional bound on
    every loop."""
    keys = [lp.key for lp in L.module_loops(site.module)]
    if not keys:
        return None

    def count_all(module: Module) -> None:
        for key in keys:  # abort blocks go last, in this order: aborts[i] is keys[i]'s
            L.add_counter(L.find(module, key), PROVISIONAL)

    trial = _trial(site, count_all, trace=True)
    if trial is None:
        return None
    load, program = trial
    log = parse_log(load.log)
    if log.processed_insns is None or log.processed_insns > TRACE_LIMIT or \
            len(program.aborts) != len(keys):
        return None  # the counters did not shorten the walk (or cannot be told apart)
    visited = {int(m.group("idx")) for line in load.log.splitlines()
               if (m := INSN_RE.match(line))}
    driven = [key for key, slot in zip(keys, program.aborts, strict=True) if slot in visited]
    if not driven:
        return None
    # each driven loop gets the same share of the budget (nested loops multiply)
    scale = (BUDGET / max(log.processed_insns, 1)) ** (1 / len(driven))
    bound = max(2, min(MAX_BOUND, int(PROVISIONAL * scale)))
    return [(key, bound) for key in driven]


def _widen(key: tuple[str, int], k: int) -> Callable[[Module], None]:
    return lambda module: L.widen_entry(L.find(module, key), k)


def widen_plans(site: Site) -> list[tuple[tuple[str, int], int]]:
    """(loop, parameter) whose widening alone the verifier accepts in a trial."""
    tried = [(lp.key, k) for lp in L.module_loops(site.module) for k in L.constant_params(lp)]
    out = []
    for key, k in tried[:MAX_WIDEN_TRIALS]:
        trial = _trial(site, _widen(key, k), trace=False)
        if trial is not None and trial[0].accepted:
            out.append((key, k))
    return out


def _where(key: tuple[str, int], module: Module) -> str:
    slot = L.find(module, key).slot
    return f"the loop at insn {slot}" if slot is not None else f"loop {key[1]} of {key[0]}"


def _param(key: tuple[str, int], k: int, module: Module) -> str:
    reg = L.find(module, key).header.params[k].reg
    return f"r{reg}" if reg is not None else f"parameter {k}"


def propose(site: Site) -> list[Candidate]:
    cls, out = site.error.error_class, []
    if cls == ErrorClass.PROGRAM_TOO_LARGE and "jumps" in site.error.fields:
        keys = [lp.key for lp in _loops(site, site.module)]

        def latch_first(s: Site) -> None:
            for key in keys:
                L.fall_to_latch(L.find(s.module, key))

        where = ", ".join(_where(k, site.module) for k in keys)
        if keys:
            out.append(Candidate(f"branches in {where} fall through towards the back edge",
                                 latch_first))
        return out
    plan = counter_plan(site)
    if plan:
        def count(s: Site, plan: Plan = plan) -> None:
            for key, bound in plan:
                L.add_counter(L.find(s.module, key), bound)

        bounds = ", ".join(f"{_where(k, site.module)}: bound {b}" for k, b in plan)
        out.append(Candidate(f"count loop trips and abort at the bound ({bounds}; the "
                             f"verifier drove them to the provisional {PROVISIONAL})", count))
    if cls == ErrorClass.PROGRAM_TOO_LARGE:
        for key, k in widen_plans(site):
            edit = _widen(key, k)
            out.append(Candidate(f"hide {_param(key, k, site.module)}'s entry constant in "
                                 f"{_where(key, site.module)} from the verifier (fp - fp + c)",
                                 lambda s, edit=edit: edit(s.module)))
    return out


register(Strategy(
    name="loops",
    classes=frozenset({ErrorClass.INFINITE_LOOP, ErrorClass.PROGRAM_TOO_LARGE}),
    description="count loop trips with a bound the budget allows, hide redundant induction "
                "constants, or let the verifier walk loop bodies back edge first",
    propose=propose,
))
