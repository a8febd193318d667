"""Errors that end a command with exit code 2 (bad input or environment).

Every error carries where it happened -- file, section, instruction index,
field -- and renders as one line, so the CLI never shows a traceback for
input it could not use.
"""

from __future__ import annotations


class EpassError(Exception):
    """Bad input, usage or environment: one clear line, exit code 2."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        section: str | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.section = section
        self.index = index
        self.field = field

    def at(
        self,
        *,
        file: str | None = None,
        section: str | None = None,
        index: int | None = None,
    ) -> EpassError:
        """Fill in location parts that are not known yet; returns self for `raise e.at(...)`."""
        if self.file is None:
            self.file = file
        if self.section is None:
            self.section = section
        if self.index is None:
            self.index = index
        return self

    def line(self) -> str:
        """`file: section S: insn N: message` with the known parts only."""
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if self.section is not None:
            parts.append(f"section {self.section}")
        if self.index is not None:
            parts.append(f"insn {self.index}")
        parts.append(self.message)
        return ": ".join(parts)

    def __str__(self) -> str:
        return self.line()


class DecodeError(EpassError):
    """Bytecode that is not a valid instruction (unknown opcode, reserved field set)."""


class ParseError(EpassError):
    """Instruction text that does not parse."""


class ObjectError(EpassError):
    """An ELF object that cannot be used (malformed, wrong machine, unknown section)."""


class BTFError(ObjectError):
    """Malformed or unsupported BTF / BTF.ext data."""


class KernelError(EpassError):
    """The running kernel cannot do what was asked (no permission, missing feature)."""


class IRError(EpassError):
    """A program the IR cannot represent, IR text that does not parse, or IR that
    cannot be compiled back (for example, spills that do not fit the frame)."""
