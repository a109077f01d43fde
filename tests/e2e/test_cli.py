"""The ``muonlab`` command line: version, help, and one-line usage errors (exit code 2)."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner

import muonlab
from muonlab.cli import app

runner = CliRunner()


def test_version_prints_installed_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"muonlab {version('muonlab')}"
    assert muonlab.__version__ == version("muonlab")


def test_help_lists_demo():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "demo" in result.output
    assert "Traceback" not in result.output


def test_no_args_shows_help():
    result = runner.invoke(app, [])
    assert "demo" in result.output
    assert "Traceback" not in result.output


def test_demo_help_lists_options():
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    for opt in ("--out", "--kappas", "--set"):
        assert opt in result.output


@pytest.mark.parametrize(
    ("args", "option", "must_mention"),
    [
        (["--kappas", "1,abc"], "--kappas", ["abc", "problem.kappa"]),
        (["--kappas", "1,,100"], "--kappas", ["1,,100"]),
        (["--kappas", "0.5"], "--kappas", [">= 1"]),
        (["--kappas", "1,inf"], "--kappas", ["inf", "number"]),
        (["--set", "steps=0"], "--set", ["steps", ">= 1"]),
        (["--set", "steps=abc"], "--set", ["steps", "integer"]),
        (["--set", "problem.n=10", "--set", "problem.r=50"], "--set", ["<= n (10)", "50"]),
        (["--set", "seeds=[-1]"], "--set", [">= 0"]),
        # the demo's own framework is gone: its options are unknown options now
        (["--steps", "5"], "--steps", ["No such option"]),
        (["--optimizers", "muon"], "--optimizers", ["No such option"]),
    ],
)
def test_bad_demo_option_is_one_line_exit_2(tmp_path, args, option, must_mention):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert option in lines[0]
    for text in must_mention:
        assert text in lines[0], (text, lines[0])
    # Validation happens before any work: nothing is written.
    assert not (tmp_path / "out").exists()


def test_missing_out_and_unknown_option_are_one_line_exit_2():
    for args, needle in ((["demo"], "--out"), (["demo", "--out", "x", "--bogus"], "--bogus")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], result.output


def test_unknown_command_exit_2():
    result = runner.invoke(app, ["nope"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    result = runner.invoke(app, ["demo", "--out", str(f)])
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "Traceback" not in result.output
