"""BPF ELF objects: sections, symbols, relocations and program kinds."""
