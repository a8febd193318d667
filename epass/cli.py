"""The `epass` command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from epass import __version__
from epass.commands.passes import passes_cmd
from epass.errors import EpassError


class _Group(click.Group):
    """Turns every EpassError into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EpassError as e:
            click.echo(f"epass: error: {e.line()}", err=True)
            ctx.exit(2)


def _emit(report: dict[str, Any], as_json: bool, render) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render(report))


section_option = click.option(
    "--section", "-s", metavar="S",
    help="Only the programs in section S (or the program named S).",
)
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable output (schema in docs/json.md).")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="epass")
def cli() -> None:
    """Repair and harden eBPF programs together with the Linux verifier.

    Exit codes: 0 success, 1 the answer is no (rejected), 2 bad input, usage
    or environment, 3 unknown.
    """


@cli.command()
@click.argument("obj", metavar="PROG.o", type=click.Path())
@section_option
@click.option("--ir", "as_ir", is_flag=True,
              help="Print the SSA IR instead (the text form docs/ir.md describes).")
@json_option
def read(obj: str, section: str | None, as_ir: bool, as_json: bool) -> None:
    """Print each program's instructions in the kernel's pseudo-C syntax.

    Subprograms are linked in as the kernel will see them; source lines come
    from the object's BTF line info, map references are annotated. With
    --ir, the programs are lifted to SSA and printed in the IR's text form.
    """
    from epass.commands.read import ir_report, read_report, render_ir, render_read
    from epass.commands.select import select_programs
    from epass.obj.reader import read_object

    bpf_obj = read_object(obj)
    programs = select_programs(bpf_obj, section)
    if as_ir:
        _emit(ir_report(bpf_obj, programs), as_json, render_ir)
        return
    report = read_report(bpf_obj, programs)
    _emit(report, as_json, render_read)


@cli.command(name="compile", short_help="Lift to SSA, run passes, compile back to an object.")
@click.argument("obj", metavar="PROG.o", type=click.Path())
@click.option("--output", "-o", metavar="OUT.o", required=True,
              help="Where to write the compiled object.")
@click.option("--passes", "-p", "pass_spec", metavar="PASSES", default="",
              help="Passes to run, comma-separated, with options: "
                   "'div_by_zero,insn_counter(limit=5000)' (see `epass passes`).")
@click.option("--check", is_flag=True,
              help="Run the IR checker after lifting and after every pass.")
@section_option
@json_option
def compile_cmd(obj: str, output: str, pass_spec: str, check: bool, section: str | None,
                as_json: bool) -> None:
    """Lift each program to SSA, run passes, compile it back and write an object.

    Without passes this is the round trip: the object comes back with the
    same sections, maps, relocations and BTF, and libbpf or bpftool load it
    like the original. With --section, the other programs keep their code.
    """
    from epass.commands.compile import compile_report, render_compile
    from epass.commands.select import select_programs
    from epass.obj.reader import read_object
    from epass.passes import parse_passes

    passes = parse_passes(pass_spec)
    bpf_obj = read_object(obj)
    programs = select_programs(bpf_obj, section)
    report = compile_report(bpf_obj, programs, passes, output, check)
    _emit(report, as_json, render_compile)


@cli.command(name="load", short_help="Transform, verify and load programs into the kernel.")
@click.argument("obj", metavar="PROG.o", type=click.Path())
@click.option("--passes", "-p", "pass_spec", metavar="PASSES", default="",
              help="Passes to run first, as for `epass compile` (see `epass passes`).")
@click.option("--pin", metavar="DIR", default=None,
              help="Pin each accepted program at DIR/NAME (DIR on a bpf filesystem).")
@click.option("--check", is_flag=True,
              help="Run the IR checker after lifting and after every pass.")
@section_option
@json_option
def load_cmd(obj: str, pass_spec: str, pin: str | None, check: bool, section: str | None,
             as_json: bool) -> None:
    """Run passes over each program, verify the result in the running kernel and load it.

    Prints each stage: the transformation (instructions before and after,
    abort sites the passes inserted), the verifier's verdict and, with --pin,
    where the program stays loaded; without --pin it is released when the
    command ends. Exit 0 all accepted, 1 some rejected, 2 bad input or
    environment (bpf() not permitted, a pin path taken).
    """
    from epass.commands.load import load_programs, render_load
    from epass.commands.select import select_programs
    from epass.obj.reader import read_object
    from epass.passes import parse_passes

    passes = parse_passes(pass_spec)
    bpf_obj = read_object(obj)
    report = load_programs(bpf_obj, select_programs(bpf_obj, section), passes, pin, check)
    _emit(report, as_json, render_load)
    sys.exit(1 if report["rejected"] else 0)


@cli.command()
@click.argument("obj", metavar="PROG.o", type=click.Path())
@section_option
@click.option("--log-level", type=click.IntRange(0, 2), default=1, show_default=True,
              help="Verifier log level: 1 the failing path, 2 every state (slow, large).")
@click.option("--log", "with_log", is_flag=True, help="Also print the whole verifier log.")
@json_option
def verify(obj: str, section: str | None, log_level: int, with_log: bool, as_json: bool) -> None:
    """Load each program, with its maps, into the running kernel's verifier.

    Prints accepted or rejected, the rejected instruction with its source line,
    the error message and class, processed instructions and verification time.
    Exit 0 when all are accepted, 1 when some are rejected.
    """
    from epass.commands.select import select_programs
    from epass.commands.verify import render_verify, verify_report
    from epass.obj.reader import read_object

    bpf_obj = read_object(obj)
    programs = select_programs(bpf_obj, section)
    report = verify_report(bpf_obj, programs, log_level=log_level, with_log=with_log)
    _emit(report, as_json, render_verify)
    sys.exit(0 if report["rejected"] == 0 else 1)


@cli.command(name="run")
@click.argument("obj", metavar="PROG.o", type=click.Path())
@section_option
@click.option("--data-in", type=click.File("rb"), metavar="FILE",
              help="Input packet bytes (default: a 74-byte Ethernet/IPv4/UDP sample).")
@click.option("--ctx-in", type=click.File("rb"), metavar="FILE",
              help="Initial context bytes (e.g. struct xdp_md / __sk_buff fields).")
@click.option("--stub", "stubs", multiple=True, metavar="HELPER=VALUE",
              help="Model a helper the interpreter does not know as returning VALUE, e.g. "
                   "--stub bpf_get_current_pid_tgid=0x100000064 (repeatable).")
@click.option("--kernel", is_flag=True,
              help="Also run it in the kernel with BPF_PROG_TEST_RUN and compare r0, the "
                   "output packet and the maps.")
@json_option
def run_cmd(obj: str, section: str | None, data_in, ctx_in, stubs: tuple[str, ...],
            kernel: bool, as_json: bool) -> None:
    """Run a program on epass's interpreter (and with --kernel, in the kernel too).

    Prints r0, the output packet and reads of uninitialized stack; with
    --kernel, any difference between the two. Exit 0 when the run ends
    normally (and both agree), 1 on a fault or a difference.
    """
    from epass.commands.run import render_run, run_report
    from epass.commands.select import select_programs
    from epass.obj.reader import read_object

    bpf_obj = read_object(obj)
    programs = select_programs(bpf_obj, section)
    if len(programs) > 1:
        names = ", ".join(f"{p.section}/{p.name}" for p in programs)
        raise EpassError(f"the object has several programs ({names}); choose one with --section",
                         file=obj)
    from epass.commands.run import parse_stubs

    report = run_report(bpf_obj, programs[0],
                        packet=data_in.read() if data_in else None,
                        ctx=ctx_in.read() if ctx_in else None, kernel=kernel,
                        stubs=parse_stubs(stubs))
    _emit(report, as_json, render_run)
    failed = report["interpreter"]["fault"] or report["same"] is False or (
        report["kernel"] is not None and not report["kernel"]["accepted"])
    sys.exit(1 if failed else 0)


@cli.command()
@click.argument("directory", metavar="DIR", type=click.Path())
@click.option("--symbolic", is_flag=True,
              help="Use the Z3 encoding (solve for r0, check it is unique) instead of the "
                   "interpreter.")
@click.option("--negative", is_flag=True,
              help="Every case must be refused or fail (bpf_conformance's negative/ directory).")
@json_option
def conformance(directory: str, symbolic: bool, negative: bool, as_json: bool) -> None:
    """Run a bpf_conformance directory of .data cases on epass's semantics.

    Prints the cases that did not pass and a passed/failed/skipped summary.
    Exit 0 only if nothing failed.
    """
    from pathlib import Path

    from epass.commands.conformance import conformance_report, render_conformance

    report = conformance_report(Path(directory), symbolic=symbolic, negative=negative,
                                progress=not as_json and sys.stderr.isatty())
    _emit(report, as_json, render_conformance)
    sys.exit(0 if report["failed"] == 0 else 1)


@cli.command(name="prove", short_help="Prove transformed programs behave like the originals.")
@click.argument("original", metavar="ORIGINAL.o", type=click.Path())
@click.argument("transformed", metavar="TRANSFORMED.o", type=click.Path())
@section_option
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="SEC", help="Give up (exit 3) when one program's proof takes longer.")
@click.option("--unroll", type=click.IntRange(min=1), default=32, show_default=True,
              metavar="N", help="Follow loops until an instruction ran N times on a path; "
                                "past it the answer is unknown (exit 3).")
@click.option("--loops", type=click.Choice(["auto", "unroll", "pair"]), default="auto",
              show_default=True,
              help="unroll: follow loops up to --unroll; pair: prove loop bodies one "
                   "iteration at a time between paired loop headers; auto: pair when "
                   "unrolling reaches the bound.")
@json_option
def prove_cmd(original: str, transformed: str, section: str | None, timeout: float,
              unroll: int, loops: str, as_json: bool) -> None:
    """Prove with Z3 that each program of TRANSFORMED.o behaves like its namesake in
    ORIGINAL.o: the same r0, faults, packet, map values and context on every input.

    Checks run cheapest first: identical code, faults, r0, packet, maps, context,
    helper calls. Exits that passes inserted to abort (recorded by `epass compile`)
    may differ: then the answer is REFINES, with when each abort fires. When the
    programs differ, prints a counterexample replayed on the interpreter. Exit 0
    equivalent or refines, 1 not equivalent, 3 unknown (timeout, unroll bound, a
    helper or map with no Z3 model), 2 bad input.
    """
    from epass.commands.prove import exit_code, prove_report, render_prove
    from epass.commands.select import select_programs
    from epass.obj.reader import read_object

    a, b = read_object(original), read_object(transformed)
    report = prove_report(a, b, select_programs(a, section), timeout, unroll, loops)
    _emit(report, as_json, render_prove)
    sys.exit(exit_code(report))


@cli.command(name="repair", short_help="Make the kernel accept a falsely rejected program.")
@click.argument("obj", metavar="PROG.o", type=click.Path())
@click.option("--output", "-o", metavar="OUT.o", default=None,
              help="Write the repaired object here (only when every program loads).")
@section_option
@click.option("--max-rounds", type=click.IntRange(min=1), default=10, show_default=True,
              metavar="N", help="Give up after N rewrites.")
@click.option("--allow-guards", is_flag=True,
              help="Also accept rewrites whose checks may fire (REFINES): the program then "
                   "aborts on inputs where it would have been unsafe.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="SEC", help="Time for each Z3 question.")
@click.option("--unroll", type=click.IntRange(min=1), default=32, show_default=True,
              metavar="N", help="Follow loops in proofs until an instruction ran N times.")
@json_option
def repair_cmd(obj: str, output: str | None, section: str | None, max_rounds: int,
               allow_guards: bool, timeout: float, unroll: int, as_json: bool) -> None:
    """Repair programs the running kernel's verifier rejects although they are safe.

    Round by round: the verifier's error and its class, the strategy and the
    instructions it changed, the proof that the program still behaves the same
    (Z3, against the original), and the verifier's verdict. Before any rewrite Z3
    checks that no input makes the original leave its memory regions; if one does,
    that input is shown and nothing is repaired (a true bug). Exit 0 repaired or
    already accepted, 1 not repaired, 3 proof unknown, 2 bad input.
    """
    from epass.commands.repair import exit_code, render_repair, repair_report
    from epass.commands.select import select_programs
    from epass.obj.reader import read_object
    from epass.repair import Options

    bpf_obj = read_object(obj)
    options = Options(max_rounds=max_rounds, allow_guards=allow_guards, timeout=timeout,
                      unroll=unroll)
    report = repair_report(bpf_obj, select_programs(bpf_obj, section), output, options)
    _emit(report, as_json, render_repair)
    sys.exit(exit_code(report))


@cli.group()
def corpus() -> None:
    """Work with a corpus of rejected programs (corpus/README.md)."""


@corpus.command(name="run")
@click.argument("directory", metavar="[DIR]", default="corpus", type=click.Path())
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="SEC", help="Time for each Z3 question.")
@json_option
def corpus_run(directory: str, timeout: float, as_json: bool) -> None:
    """Repair every case under DIR (default: ./corpus) and print a table: case,
    family, whether this kernel rejects it, the outcome, the proof, rounds and time,
    with a summary line. Exit 0 when every false rejection the kernel rejects was
    repaired and proven and no true bug was turned into an accepted program.
    """
    from epass.commands.corpus import corpus_report, exit_code, render_corpus
    from epass.repair import Options

    report = corpus_report(directory, Options(timeout=timeout),
                           progress=not as_json and sys.stderr.isatty())
    _emit(report, as_json, render_corpus)
    sys.exit(exit_code(report))


cli.add_command(passes_cmd)


def main() -> None:
    cli()
