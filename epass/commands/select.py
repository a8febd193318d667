"""Choosing programs of an object by `--section`."""

from __future__ import annotations

from epass.errors import ObjectError
from epass.obj.model import BpfObject, Program


def select_programs(obj: BpfObject, section: str | None) -> list[Program]:
    """All programs, or those whose section or function name is `section`."""
    if not obj.programs:
        raise ObjectError("the object holds no programs", file=obj.path)
    if section is None:
        return list(obj.programs)
    chosen = [p for p in obj.programs if section in (p.section, p.name)]
    if not chosen:
        names = ", ".join(f"{p.section} ({p.name})" for p in obj.programs)
        raise ObjectError(f"no program in section {section!r}; sections: {names}",
                          file=obj.path)
    return chosen
