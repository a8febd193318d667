"""The IR checker finds every kind of broken IR, reports all of it, and marks the lines."""

from __future__ import annotations

import pytest

from epass.errors import IRError
from epass.ir import model as ir
from epass.ir.check import check_module, verify_module
from epass.ir.text import parse_module
from epass.isa.opcodes import AluOp

GOOD = """
module @p section "xdp"
map @m type 2 key 4 value 8 max 1
func @p args 1 {
bb0:
  %0:r1 = arg 1
  %1:r2 = load u32 [%0]
  %2:r3 = map_value @m
  br jeq %1, 0, bb1(%1), bb2
bb1(%3:r0):
  ret %3
bb2:
  %4:r0 = add.32 %1, 1
  jump bb1(%4)
}
"""


def messages(text: str) -> list[str]:
    return [v.message for v in check_module(parse_module(text))]


def test_a_good_module_has_no_violations():
    assert messages(GOOD) == []


@pytest.mark.parametrize(("old", "new", "message"), [
    ("  ret %3\n", "", "empty block: it needs a terminator"),
    ("  ret %3\n", "  %8 = mov 1\n", "the block does not end with a terminator"),
    ("  jump bb1(%4)\n", "  jump bb1(%4)\n  jump bb1(%4)\n",
     "terminator in the middle of a block"),
    ("br jeq %1, 0, bb1(%1), bb2", "br jeq %1, 0, bb1, bb2",
     "passes 0 argument(s) to bb1, which has 1 parameter(s)"),
    ("  %4:r0 = add.32 %1, 1\n", "  %4:r0 = add.32 %3, 1\n",
     "uses %3, whose definition does not dominate it"),
    ("add.32 %1, 1", "add.16 %1, 1", "unknown"),  # width is part of the name: parse error
    ("load u32 [%0]", "load u32 [fp - 516]",
     "stack access [fp -516] of 4 byte(s) is outside the 512-byte frame"),
    ("load u32 [%0]", "load u64 [fp - 4]",
     "stack access [fp -4] of 8 byte(s) is outside the 512-byte frame"),
    ("map_value @m", "map_value @nope", "map 'nope' is not defined"),
    ("br jeq %1, 0,", "br jeq 5, 0,", "the first compared operand must be a value or fp, not 5"),
    ("add.32 %1, 1", "add.32 %1, 4294967296", "immediate 4294967296 does not fit 32 signed bits"),
    ("load u32 [%0]", "load s64 [%0]", "a sign-extending load of 8 bytes does not exist"),
])
def test_each_rule(old, new, message):
    assert old in GOOD
    text = GOOD.replace(old, new)
    if message == "unknown":
        with pytest.raises(IRError, match="unknown instruction 'add.16'"):
            parse_module(text)
        return
    assert message in messages(text)


def test_rules_only_the_api_can_break():
    module = parse_module(GOOD)
    f = module.main
    bb1, bb2 = f.blocks[1], f.blocks[2]
    add = bb2.insts[0]
    add.bits = 16
    add.operands.append(7)  # bypasses use tracking: three operands
    load = f.entry.insts[1]
    load.result.uses.append(bb2.insts[1])  # a use the instruction does not have
    f.entry.insts[0].block = bb1
    found = {v.message for v in check_module(module)}
    assert found >= {"ALU width 16, expected 32 or 64", "has 3 operand(s), expected 2",
                     "the use list of %1 is out of date", "instruction's block link is wrong"}


def test_entry_block_rules_and_arguments():
    text = GOOD.replace("  %0:r1 = arg 1\n", "  %0:r1 = arg 3\n")
    assert "argument r3: the function takes 1" in messages(text)
    module = parse_module(GOOD)
    f = module.main
    f.blocks[2].terminator.retarget(f.blocks[2].terminator.edges[0], f.entry, [])
    assert "the entry block has predecessors" in {v.message for v in check_module(module)}


def test_verify_reports_every_violation_with_the_ir_marked():
    text = GOOD.replace("  %4:r0 = add.32 %1, 1\n", "  %4:r0 = add.32 %3, 1\n").replace(
        "map_value @m", "map_value @nope")
    with pytest.raises(IRError) as e:
        verify_module(parse_module(text), after="pass demo")
    out = str(e.value)
    assert out.startswith("IR check failed after pass demo: 2 problem(s)\nfunc @p args 1 {")
    assert "  %2:r3 = map_value @nope\n  ^^^ map 'nope' is not defined\n" in out
    assert ("  %4:r0 = add.32 %3, 1\n  ^^^ uses %3, whose definition does not dominate it\n"
            in out)


def test_values_and_operands_keep_their_links():
    module = parse_module(GOOD)
    f = module.main
    v1 = f.entry.insts[1].result
    users = sorted(type(u).__name__ for u in v1.uses)
    assert users == ["Alu", "Branch", "Branch"]  # compared, and passed as bb1's argument
    new = f.new_value()
    copy = f.entry.insert(2, ir.Alu(AluOp.MOV, 64, [v1], new))
    v1.replace_all_uses(new, exclude=(copy,))
    assert v1.uses == [copy]
    assert sorted(type(u).__name__ for u in new.uses) == ["Alu", "Branch", "Branch"]
    assert check_module(module) == []
