"""eBPF semantics: each instruction's meaning written once (ops.py, step.py) over a
small bit-vector interface (domain.py), run concretely (interp.py) and
symbolically with Z3 (symbolic.py), with memory as regions (memory.py)."""
