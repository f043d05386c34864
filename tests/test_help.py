"""Help that teaches: every command's --help ends with example command lines that parse with
the real parser and name input files that exist; every flag says its default; --backend
lists its choices everywhere."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from backends import BACKENDS
from netpatch import cli, compile_patch
from netpatch.command import example_commands

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
INPUT_SUFFIXES = (".keras", ".h5", ".json", ".npz", ".csv", ".nnir", ".onnx", ".nnet", ".vnnlib")
OUTPUT_FLAGS = {"--out", "-o", "--to", "--dump-lp", "--logits", "--save-patched"}


def subcommands(parser) -> dict:
    return dict(parser._subparsers._group_actions[0].choices)


def all_parsers() -> dict:
    """Every command's parser by its name."""
    netpatch = cli.build_parser()
    parsers = {"netpatch": netpatch, "compile-patch": compile_patch.build_parser()}
    parsers.update({f"netpatch {name}": p for name, p in subcommands(netpatch).items()})
    return parsers


PARSERS = all_parsers()


def parse(line: str):
    """Parse one example line with the parser of the command it names."""
    words = shlex.split(line)
    parser = cli.build_parser() if words[0] == "netpatch" else compile_patch.build_parser()
    return words, parser.parse_args(words[1:])


def input_files(words: list[str]) -> list[str]:
    """The words that name input files (a known suffix, not the value of an output flag)."""
    return [word for previous, word in zip([""] + words, words)
            if previous not in OUTPUT_FLAGS and word.endswith(INPUT_SUFFIXES)]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_help_ends_with_examples_that_parse_and_name_existing_files(name):
    parser = PARSERS[name]
    epilog = parser.epilog or ""
    lines = example_commands(epilog)
    assert 2 <= len(lines) <= 4, (name, lines)
    assert epilog.rstrip().endswith(lines[-1])      # the examples end the help
    assert "``" not in parser.format_help()         # no raw reStructuredText in a help text
    for line in lines:
        words, args = parse(line)
        if name != "netpatch":                       # a subcommand shows its own examples
            assert " ".join(words[:len(name.split())]) == name, line
        assert callable(args.run)
        files = input_files(words)
        assert files, line
        for path in files:
            if path.startswith("../shared/data") and not SHARED.is_dir():
                continue    # the optional reference data is absent on this machine
            assert (ROOT / path).is_file(), f"{name}: {line}: {path} does not exist"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_says_its_default(name):
    for action in PARSERS[name]._actions:
        if not action.option_strings or action.dest == "help":
            continue
        said = "(required)" if action.required else "(default: "
        assert action.help and said in action.help, (name, action.option_strings)


@pytest.mark.parametrize("name", ["compile-patch", "netpatch attack", "netpatch bench",
                                  "netpatch verify"])
def test_backend_lists_its_choices(name):
    backend = next(a for a in PARSERS[name]._actions if "--backend" in a.option_strings)
    assert tuple(backend.choices) == tuple(BACKENDS)


def test_ir_and_eval_have_descriptions_and_the_pass_list_names_its_switches():
    assert PARSERS["netpatch ir"].description and PARSERS["netpatch eval"].description
    epilog = PARSERS["compile-patch"].epilog
    passes = epilog.split("passes, in their default order", 1)[1].split("backends:", 1)[0]
    for switch in ("--no-phase-fixing", "--no-sign-pruning", "--no-relaxation"):
        assert f"(off: {switch})" in passes
    compact = next(line for line in passes.splitlines() if line.strip().startswith("compact"))
    assert "(off:" not in compact      # a pass without a switch says none
