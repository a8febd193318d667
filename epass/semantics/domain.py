"""The small bit-vector interface every instruction's meaning is written against.

Two instances: `Concrete` (Python integers, for the interpreter) and
`Symbolic` (Z3 bit-vectors, for proofs). Semantics code calls only these
methods, so one definition serves both. All operations are total: division
and remainder by zero return *something* (the semantics guards them with
`ite`), because the concrete instance evaluates both sides of an `ite`.

Values carry their width: `Word` for the concrete instance, `z3.BitVecRef`
for the symbolic one. Conditions are `bool` / `z3.BoolRef`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import z3


@dataclass(frozen=True, slots=True)
class Word:
    """A concrete bit-vector: `value` in [0, 2**bits)."""

    value: int
    bits: int

    @property
    def signed(self) -> int:
        v = self.value
        return v - (1 << self.bits) if v >> (self.bits - 1) else v

    def __repr__(self) -> str:
        return f"0x{self.value:x}:{self.bits}"


class Domain(Protocol):
    """What instruction semantics may do with values (V) and conditions (B)."""

    def const(self, value: int, bits: int) -> Any: ...
    def bits(self, a: Any) -> int: ...

    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def udiv(self, a: Any, b: Any) -> Any: ...
    def urem(self, a: Any, b: Any) -> Any: ...
    def sdiv(self, a: Any, b: Any) -> Any: ...
    def srem(self, a: Any, b: Any) -> Any: ...
    def and_(self, a: Any, b: Any) -> Any: ...
    def or_(self, a: Any, b: Any) -> Any: ...
    def xor(self, a: Any, b: Any) -> Any: ...
    def shl(self, a: Any, b: Any) -> Any: ...
    def lshr(self, a: Any, b: Any) -> Any: ...
    def ashr(self, a: Any, b: Any) -> Any: ...
    def neg(self, a: Any) -> Any: ...

    def extract(self, hi: int, lo: int, a: Any) -> Any: ...
    def concat(self, hi: Any, lo: Any) -> Any: ...
    def zext(self, a: Any, bits: int) -> Any: ...
    def sext(self, a: Any, bits: int) -> Any: ...

    def eq(self, a: Any, b: Any) -> Any: ...
    def ult(self, a: Any, b: Any) -> Any: ...
    def ule(self, a: Any, b: Any) -> Any: ...
    def slt(self, a: Any, b: Any) -> Any: ...
    def sle(self, a: Any, b: Any) -> Any: ...
    def not_(self, c: Any) -> Any: ...
    def ite(self, c: Any, a: Any, b: Any) -> Any: ...


class Concrete:
    """Python integers. Division by zero yields 0 (callers guard it)."""

    def const(self, value: int, bits: int) -> Word:
        return Word(value & ((1 << bits) - 1), bits)

    def bits(self, a: Word) -> int:
        return a.bits

    def _w(self, value: int, bits: int) -> Word:
        return Word(value & ((1 << bits) - 1), bits)

    def add(self, a: Word, b: Word) -> Word:
        return self._w(a.value + b.value, a.bits)

    def sub(self, a: Word, b: Word) -> Word:
        return self._w(a.value - b.value, a.bits)

    def mul(self, a: Word, b: Word) -> Word:
        return self._w(a.value * b.value, a.bits)

    def udiv(self, a: Word, b: Word) -> Word:
        return self._w(a.value // b.value if b.value else 0, a.bits)

    def urem(self, a: Word, b: Word) -> Word:
        return self._w(a.value % b.value if b.value else 0, a.bits)

    def sdiv(self, a: Word, b: Word) -> Word:
        x, y = a.signed, b.signed
        if y == 0:
            return self._w(0, a.bits)
        q = abs(x) // abs(y)  # truncating division
        return self._w(q if (x < 0) == (y < 0) else -q, a.bits)

    def srem(self, a: Word, b: Word) -> Word:
        x, y = a.signed, b.signed
        if y == 0:
            return self._w(0, a.bits)
        r = abs(x) % abs(y)  # sign follows the dividend
        return self._w(-r if x < 0 else r, a.bits)

    def and_(self, a: Word, b: Word) -> Word:
        return Word(a.value & b.value, a.bits)

    def or_(self, a: Word, b: Word) -> Word:
        return Word(a.value | b.value, a.bits)

    def xor(self, a: Word, b: Word) -> Word:
        return Word(a.value ^ b.value, a.bits)

    def shl(self, a: Word, b: Word) -> Word:
        return self._w(a.value << b.value if b.value < a.bits else 0, a.bits)

    def lshr(self, a: Word, b: Word) -> Word:
        return Word(a.value >> b.value if b.value < a.bits else 0, a.bits)

    def ashr(self, a: Word, b: Word) -> Word:
        return self._w(a.signed >> min(b.value, a.bits - 1), a.bits)

    def neg(self, a: Word) -> Word:
        return self._w(-a.value, a.bits)

    def extract(self, hi: int, lo: int, a: Word) -> Word:
        return self._w(a.value >> lo, hi - lo + 1)

    def concat(self, hi: Word, lo: Word) -> Word:
        return Word((hi.value << lo.bits) | lo.value, hi.bits + lo.bits)

    def zext(self, a: Word, bits: int) -> Word:
        return Word(a.value, bits)

    def sext(self, a: Word, bits: int) -> Word:
        return self._w(a.signed, bits)

    def eq(self, a: Word, b: Word) -> bool:
        return a.value == b.value

    def ult(self, a: Word, b: Word) -> bool:
        return a.value < b.value

    def ule(self, a: Word, b: Word) -> bool:
        return a.value <= b.value

    def slt(self, a: Word, b: Word) -> bool:
        return a.signed < b.signed

    def sle(self, a: Word, b: Word) -> bool:
        return a.signed <= b.signed

    def not_(self, c: bool) -> bool:
        return not c

    def ite(self, c: bool, a: Any, b: Any) -> Any:
        return a if c else b


class Symbolic:
    """Z3 bit-vectors. Z3's own division by zero results are masked by the semantics' guards."""

    def const(self, value: int, bits: int) -> z3.BitVecRef:
        return z3.BitVecVal(value & ((1 << bits) - 1), bits)

    def bits(self, a: z3.BitVecRef) -> int:
        return a.size()

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def udiv(self, a, b):
        return z3.UDiv(a, b)

    def urem(self, a, b):
        return z3.URem(a, b)

    def sdiv(self, a, b):
        return a / b  # bvsdiv truncates; INT_MIN / -1 wraps to INT_MIN

    def srem(self, a, b):
        return z3.SRem(a, b)

    def and_(self, a, b):
        return a & b

    def or_(self, a, b):
        return a | b

    def xor(self, a, b):
        return a ^ b

    def shl(self, a, b):
        return a << b

    def lshr(self, a, b):
        return z3.LShR(a, b)

    def ashr(self, a, b):
        return a >> b

    def neg(self, a):
        return -a

    def extract(self, hi: int, lo: int, a):
        return z3.Extract(hi, lo, a)

    def concat(self, hi, lo):
        return z3.Concat(hi, lo)

    def zext(self, a, bits: int):
        return z3.ZeroExt(bits - a.size(), a) if bits > a.size() else a

    def sext(self, a, bits: int):
        return z3.SignExt(bits - a.size(), a) if bits > a.size() else a

    def eq(self, a, b):
        return a == b

    def ult(self, a, b):
        return z3.ULT(a, b)

    def ule(self, a, b):
        return z3.ULE(a, b)

    def slt(self, a, b):
        return a < b

    def sle(self, a, b):
        return a <= b

    def not_(self, c):
        return z3.Not(c)

    def ite(self, c, a, b):
        return z3.If(c, a, b)


CONCRETE = Concrete()
SYMBOLIC = Symbolic()
