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
    for opt in ("--out", "--kappas", "--n", "--rank", "--steps", "--seed", "--optimizers"):
        assert opt in result.output


@pytest.mark.parametrize(
    ("args", "option", "must_mention"),
    [
        (["--steps", "-5"], "--steps", [">= 1", "-5"]),
        (["--steps", "0"], "--steps", [">= 1"]),
        (["--steps", "abc"], "--steps", ["integer"]),
        (["--kappas", "1,abc"], "--kappas", ["abc", "1,100,10000"]),
        (["--kappas", "1,,100"], "--kappas", ["comma-separated"]),
        (["--kappas", "0.5"], "--kappas", [">= 1"]),
        (["--kappas", "1,inf"], "--kappas", ["finite"]),
        (["--optimizers", "muon,adam"], "--optimizers", ["adam", "muon", "gd", "signgd", "scaledgd"]),
        (["--n", "1"], "--n", [">= 2"]),
        (["--rank", "0"], "--rank", [">= 1"]),
        (["--rank", "50", "--n", "10"], "--rank", ["<= n (10)", "50"]),
        (["--seed", "-1"], "--seed", [">= 0"]),
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
    assert not (tmp_path / "out" / "demo.json").exists()


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
    result = runner.invoke(app, ["demo", "--out", str(f), "--steps", "3"])
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "Traceback" not in result.output
