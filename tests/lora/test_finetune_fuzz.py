"""Property-based fuzzing of ``muonlab finetune``'s inputs (issue 14): every generated
input ends in success or in ONE line with exit code 2 — never a traceback, and never a
write before validation has finished.

Validation only: training is replaced by a sentinel (``_run_one`` raises
:class:`_Validated`), so an input that passes every check stops right where the first
run would start, and must not have written anything by then. The Hub is "unreachable"
throughout (no network). Example counts: :data:`CLI_EXAMPLES` command lines,
:data:`CONFIG_EXAMPLES` option dictionaries, :data:`CSV_EXAMPLES` CSV files.
"""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification  # noqa: E402

import muonlab.lora.finetune as ft  # noqa: E402
from muonlab.cli import app  # noqa: E402
from muonlab.lora.adapters import LoraError  # noqa: E402
from muonlab.lora.data import DataError, load_table  # noqa: E402
from muonlab.lora.finetune import FinetuneConfig, config_from_options, default_model_path  # noqa: E402

CLI_EXAMPLES = 300
CONFIG_EXAMPLES = 500
CSV_EXAMPLES = 300

runner = CliRunner()
_OUTCOMES: Counter[str] = Counter()  # how the CLI examples ended (shown with pytest -s)


@pytest.fixture(scope="module", autouse=True)
def _report_outcomes():
    yield
    if _OUTCOMES:
        print(f"\nfinetune CLI fuzz outcomes: {dict(_OUTCOMES)}")


class _Validated(BaseException):
    """Raised where the first run would start: every check passed."""


# --- fixed files the strategies pick from ------------------------------------------------

_ROOT = Path(tempfile.mkdtemp(prefix="muonlab-fuzz-"))  # the strategies need the paths when defined
atexit.register(shutil.rmtree, _ROOT, True)


def _files() -> dict[str, Path]:
    bert = _ROOT / "bert"
    if not (bert / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(str(default_model_path()))
        torch.manual_seed(0)
        BertForSequenceClassification(BertConfig(
            vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)
        tok.save_pretrained(bert)
    files = {"bert": bert, "folder": _ROOT / "folder", "a_file": _ROOT / "a_file.txt"}
    files["folder"].mkdir(exist_ok=True)
    files["a_file"].write_text("not a folder")
    csvs = {
        "good.csv": "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20)),
        "names.csv": "sentence,y\n" + "".join(f"row {i},{'pos' if i % 3 else 'neg'}\n" for i in range(20)),
        "ragged.csv": "text,label\ngood,1\nbad\nfine,0\n",
        "huge_label.csv": "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(9)) + "row,100000000\n",
        "one_class.csv": "text,label\na,1\nb,1\nc,1\n",
        "empty.csv": "",
        "regression.csv": "text,label\na,0.5\nb,1.5\nc,2.5\n",
        "notes.txt": "text,label\na,0\nb,1\n",
    }
    for name, text in csvs.items():
        files[name] = _ROOT / name
        files[name].write_text(text)
    return files


FILES = _files()

# --- strategies --------------------------------------------------------------------------

_WEIRD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_NUMBER_TEXT = st.sampled_from(["inf", "-inf", "nan", "NaN", "1e309", "-1e309", "1e-320", "0", "-0", "1.5", "abc",
                                "", " ", "0x10", "1_000", "99999999999999999999999", "-99999999999999999999999"])


def _floats() -> st.SearchStrategy[str]:
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(min_value=1e-6, max_value=1.0).map(repr),
        _NUMBER_TEXT,
    )


def _ints(small_max: int = 12) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-3, small_max).map(str),
        st.integers(-(10**30), 10**30).filter(lambda v: abs(v) > 10**7).map(str),
        st.integers(2**31, 2**70).map(str),
        _NUMBER_TEXT,
    )


def _path_or_text(*names: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([str(FILES[n]) for n in names]),
        st.sampled_from(["muonlab-sentiment", "", ".", "/", "~nosuchuser/x.csv", "no/such/file.csv",
                         "org/name", "a" * 300, "/" + "a/" * 2100, "./missing", "x\\y"]),
        _WEIRD_TEXT,
    )


_OPTIONS = {
    "--lr": _floats(), "--alpha": _floats(), "--dropout": _floats(), "--epochs": _floats(),
    "--rank": _ints(), "--max-steps": _ints(), "--batch-size": _ints(64), "--max-length": _ints(80),
    "--n": _ints(40), "--seed": _ints(), "--monitor-every": _ints(), "--save-steps": _ints(),
    "--optimizer": st.one_of(st.sampled_from(["muon", "adamw", "both"]), _WEIRD_TEXT),
    "--task": st.one_of(st.sampled_from(["classification", "causal_lm"]), _WEIRD_TEXT),
    "--target-modules": st.one_of(st.sampled_from(["query,value", "query", "value,key", "nope", ",", " , ",
                                                   "query,,value", "dense", "classifier"]), _WEIRD_TEXT),
    "--text-field": st.one_of(st.sampled_from(["text", "sentence", "label", "nope"]), _WEIRD_TEXT),
    "--label-field": st.one_of(st.sampled_from(["label", "y", "text", "nope"]), _WEIRD_TEXT),
    "--data": _path_or_text("good.csv", "names.csv", "ragged.csv", "huge_label.csv", "one_class.csv", "empty.csv",
                            "regression.csv", "notes.txt", "folder", "a_file"),
    "--model": _path_or_text("bert", "folder", "a_file", "good.csv"),
}


@st.composite
def _command(draw) -> tuple[list[str], str]:
    """A ``finetune`` command line (``--out`` last) and the kind of ``--out`` it uses."""
    # Mostly valid defaults (the tiny model, small data), then any subset of options fuzzed.
    args = {"--model": str(FILES["bert"]), "--data": str(FILES["good.csv"]), "--n": "16", "--max-length": "16",
            "--max-steps": "2", "--batch-size": "4"}
    chosen = draw(st.lists(st.sampled_from(sorted(_OPTIONS)), max_size=3, unique=True))
    for opt in chosen:
        args[opt] = draw(_OPTIONS[opt])
    argv = [a for opt, value in args.items() for a in (opt, value)]
    if draw(st.booleans()):
        argv.append("--tensorboard")
    out_kind = draw(st.sampled_from(["fresh"] * 6 + ["empty", "file", "under_file", "long"]))
    return argv, out_kind


def _out(kind: str) -> str:
    fresh = _ROOT / "out" / uuid.uuid4().hex
    return {"fresh": str(fresh), "empty": "", "file": str(FILES["a_file"]),
            "under_file": str(FILES["a_file"] / "sub"), "long": str(fresh / ("x" * 300))}[kind]


def _snapshot() -> set[str]:
    return {str(p.relative_to(_ROOT)) for p in _ROOT.rglob("*")}


# --- the properties ----------------------------------------------------------------------

@settings(max_examples=CLI_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_command())
def test_any_finetune_command_line_is_valid_or_one_line_exit_2_and_writes_nothing(command):
    import muonlab.lora.hub as hub

    argv, out_kind = command
    out = _out(out_kind)
    before = _snapshot()
    real_run, real_probe = ft._run_one, hub.hub_unreachable
    ft._run_one = _raise_validated  # type: ignore[assignment]
    hub.hub_unreachable = lambda *a, **k: "unreachable (no network in tests)"  # type: ignore[assignment]
    try:
        result = runner.invoke(app, ["finetune", *argv, "--out", out])
    except _Validated:  # a BaseException: CliRunner lets it through
        result = None  # every check passed: training would start now
    finally:
        ft._run_one = real_run  # type: ignore[assignment]
        hub.hub_unreachable = real_probe  # type: ignore[assignment]
    assert _snapshot() == before, f"wrote before validation finished: {argv} --out {out!r}"
    _OUTCOMES["validated" if result is None else f"exit {result.exit_code}"] += 1
    if result is None:
        return
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, (argv, out, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), (argv, out, result.output)
    assert "Traceback" not in result.output


def _raise_validated(*args, **kwargs):
    raise _Validated


_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**25), 10**25), st.floats(allow_nan=True, allow_infinity=True),
    _WEIRD_TEXT, st.lists(_WEIRD_TEXT, max_size=3), st.tuples(_WEIRD_TEXT), st.just(("muon", "adamw")),
    st.just(("query", "value")), st.just(()),
)


@settings(max_examples=CONFIG_EXAMPLES, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(sorted(FinetuneConfig.model_fields)), _ANY, max_size=5))
def test_any_options_give_a_bounded_config_or_one_line_naming_the_field(options):
    try:
        cfg = config_from_options(**options)
    except LoraError as e:
        assert "\n" not in str(e) and e.field in FinetuneConfig.model_fields, (options, e, e.field)
        assert str(e).startswith(f"{e.field}: ")
        return
    for name, value in cfg.model_dump().items():  # what passed is finite and within its bounds
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)
    assert 0 <= cfg.seed < 2**32 and -1 <= cfg.max_steps <= ft.MAX_STEPS
    assert cfg.n_examples is None or 2 <= cfg.n_examples <= ft.MAX_EXAMPLES
    assert cfg.target_modules and all(t.strip() for t in cfg.target_modules)


_CELL = st.one_of(
    st.integers(-(10**20), 10**20).map(str), st.integers(0, 3).map(str), st.sampled_from(["", "NA", "pos", "neg",
                                                                                          "1.5", "inf", "nan"]),
    _WEIRD_TEXT.filter(lambda t: "\n" not in t and "\r" not in t and '"' not in t),
)


@settings(max_examples=CSV_EXAMPLES, deadline=None, derandomize=True)
@given(st.lists(st.lists(_CELL, min_size=1, max_size=3), min_size=0, max_size=12), st.integers(2, 20))
def test_any_csv_loads_as_labels_0_to_k_minus_1_or_one_line(rows, n):
    path = _ROOT / f"fuzz-{uuid.uuid4().hex}.csv"
    path.write_text("text,label\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    try:
        df = load_table(str(path), n=n)
    except DataError as e:
        assert "\n" not in str(e) and e.field is not None and str(e).startswith(f"{e.field}: "), e
        return
    finally:
        path.unlink()
    labels = df["label"].to_numpy()
    assert labels.dtype == np.int64 and labels.min() >= 0 and len(np.unique(labels)) >= 2
    assert int(labels.max()) < max(len(rows), 2), (rows, labels)  # K is bounded by the rows
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["text", "label"]
