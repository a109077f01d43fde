"""Issue 14 (reliability) for ``muonlab finetune``: absurd options and data refused in one
line before anything is written, a failed run shown (not crashed on) in the summary, a
resumed run's ``final_loss`` equal to the uninterrupted one, and fast offline Hub errors.

Tiny BERT folders built from a config (MiniLM's tokenizer, 64 positions); no network.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification  # noqa: E402

from muonlab.cli import app  # noqa: E402
from muonlab.engine.store import ResultStore  # noqa: E402
from muonlab.lora.data import DataError, load_table  # noqa: E402
from muonlab.lora.finetune import FinetuneConfig, default_model_path, finetune  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-rel")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    return root / "bert"


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


class _Trained(BaseException):
    """Raised instead of training: validation passed (not an Exception, so never 'failed')."""


@pytest.fixture
def no_training(monkeypatch):
    import muonlab.lora.finetune as ft

    def refuse(*args, **kwargs):
        raise _Trained

    monkeypatch.setattr(ft, "_run_one", refuse)


# --- item 1: absurd options, absurd labels, and the summary of a failed run -----------------

BASE = ["--max-steps", "2", "--n", "16", "--batch-size", "4", "--optimizer", "muon", "--save-steps", "1",
        "--max-length", "16"]


@pytest.mark.parametrize(("args", "option", "allowed"), [
    (["--lr", "inf"], "--lr", "allowed:"),
    (["--lr", "nan"], "--lr", "allowed:"),
    (["--lr", "1e300"], "--lr", "allowed:"),
    (["--alpha", "inf"], "--alpha", "allowed:"),
    (["--alpha", "-inf"], "--alpha", "allowed:"),
    (["--dropout", "nan"], "--dropout", "allowed:"),
    (["--epochs", "inf", "--max-steps", "-1"], "--epochs", "allowed:"),
    (["--epochs", "nan"], "--epochs", "allowed:"),
    (["--max-length", "100000"], "--max-length", "64"),  # the model has 64 positions
    (["--max-length", "65"], "--max-length", "64"),
    (["--max-length", str(10**30)], "--max-length", "allowed:"),
    (["--n", str(10**30)], "--n", "allowed:"),
    (["--max-steps", "99999999999999999999999"], "--max-steps", "allowed:"),
    (["--max-steps", "-5"], "--max-steps", "allowed:"),
    (["--batch-size", str(10**12)], "--batch-size", "allowed:"),
    (["--save-steps", str(10**20)], "--save-steps", "allowed:"),
    (["--monitor-every", str(10**20)], "--monitor-every", "allowed:"),
    (["--rank", str(10**30)], "--rank", "allowed:"),
    (["--seed", "-1"], "--seed", "allowed:"),
    (["--seed", str(2**64)], "--seed", "allowed:"),
])
def test_absurd_options_are_refused_in_one_line_before_anything_is_written(bert_dir, tmp_path, no_training,
                                                                          args, option, allowed):
    out = tmp_path / "o"
    result = runner.invoke(app, ["finetune", "--out", str(out), "--model", str(bert_dir), *BASE, *args])
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: Invalid value for '{option}': "), lines[0]
    assert allowed in lines[0], lines[0]
    assert not out.exists()


def test_a_failed_run_is_shown_as_failed_in_the_summary(bert_dir, tmp_path, monkeypatch):
    """Issue 14 item 1: the summary table raised 'boolean value of NA is ambiguous'."""
    import muonlab.lora.finetune as ft

    def broken(cfg, opt, *a, **k):
        raise RuntimeError("simulated divergence")

    monkeypatch.setattr(ft, "_run_one", broken)
    out = tmp_path / "o"
    result = runner.invoke(app, ["finetune", "--out", str(out), "--model", str(bert_dir), *BASE])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, TypeError) and "Traceback" not in result.output
    assert "failed" in result.output and "simulated divergence" in result.output
    assert "store:" in result.output and "report:" in result.output
    runs = ResultStore(out / "finetune").runs()
    assert list(runs["status"]) == ["failed"]


def test_a_failed_run_next_to_an_ok_one_is_shown_too(bert_dir, tmp_path, monkeypatch):
    import muonlab.lora.finetune as ft

    real = ft._run_one

    def flaky(cfg, opt, *a, **k):
        if opt == "muon":
            raise RuntimeError("simulated divergence")
        return real(cfg, opt, *a, **k)

    monkeypatch.setattr(ft, "_run_one", flaky)
    out = tmp_path / "o"
    args = [a if a != "muon" else "both" for a in BASE]
    result = runner.invoke(app, ["finetune", "--out", str(out), "--model", str(bert_dir), *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "store:" in result.output and "report:" in result.output
    runs = ResultStore(out / "finetune").runs().set_index("optimizer")
    assert runs.loc["muon", "status"] == "failed" and runs.loc["adamw", "status"] == "ok"


def test_a_huge_class_id_is_refused_in_one_line(bert_dir, tmp_path, no_training):
    """A label of 100000000 built a 1e8-class head (MemoryError after 23 s)."""
    csv = tmp_path / "d.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(16)], "label": [0, 1] * 7 + [1, 100000000]}).to_csv(csv,
                                                                                                       index=False)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"^label_field: class id 100000000 .*0\.\.K-1") as e:
        load_table(str(csv))
    assert e.value.field == "label_field"
    out = tmp_path / "o"
    result = runner.invoke(app, ["finetune", "--out", str(out), "--model", str(bert_dir), "--data", str(csv),
                                 *BASE])
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: Invalid value for '--label-field': class id 100000000"), lines[0]
    assert time.perf_counter() - t0 < 20 and not out.exists()


def test_class_ids_with_gaps_get_a_head_for_every_id(bert_dir, tmp_path):
    """Ids {0, 2}: the head needs 3 outputs (it had nunique() = 2, so id 2 was out of range)."""
    csv = tmp_path / "d.csv"
    pd.DataFrame({"text": [f"w{i} film" for i in range(24)], "label": [0, 2] * 12}).to_csv(csv, index=False)
    cfg = FinetuneConfig(model=str(bert_dir), data=str(csv), optimizers=("adamw",), max_steps=2, batch_size=4,
                         max_length=16, rank=2, save_steps=5)
    res = finetune(cfg, tmp_path / "o", report=False)
    assert res.executed == ["adamw"], res.failed


def test_tensorboard_without_its_package_is_refused_before_anything_is_written(bert_dir, tmp_path, monkeypatch,
                                                                              no_training):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    out = tmp_path / "o"
    result = runner.invoke(app, ["finetune", "--out", str(out), "--model", str(bert_dir), *BASE, "--tensorboard"])
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: Invalid value for '--tensorboard': needs the 'tensorboard' package")
    assert not out.exists()


@pytest.mark.parametrize("kind", ["empty", "file", "under_file"])
def test_an_unusable_out_is_refused_before_anything_is_written(bert_dir, tmp_path, no_training, kind):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    out = {"empty": "", "file": str(a_file), "under_file": str(a_file / "sub")}[kind]
    result = runner.invoke(app, ["finetune", "--out", out, "--model", str(bert_dir), *BASE])
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: Invalid value for '--out': "), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"] and a_file.read_text() == "x"


def test_a_finetune_experiment_checks_its_data_before_writing_its_store(bert_dir, tmp_path):
    """``muonlab reproduce`` of a fine-tuning experiment wrote meta.json before reading the data."""
    from muonlab.lora.experiment import FinetuneExperiment, run_finetune_experiment

    csv = tmp_path / "ragged.csv"
    csv.write_text("text,label\ngood,1\nbad\n")
    exp = FinetuneExperiment(name="t", finetune={"model": str(bert_dir), "data": str(csv), "max_steps": 2},
                             seeds=[0, 1])
    with pytest.raises(DataError, match="line 3 has 1 field"):
        run_finetune_experiment(exp, tmp_path / "store")
    assert not (tmp_path / "store").exists()


# --- item 4: a resumed run reports the final_loss of the uninterrupted one -------------------

def _cfg(bert_dir: Path, **kw) -> FinetuneConfig:
    base = {"model": str(bert_dir), "n_examples": 64, "max_steps": 6, "save_steps": 2, "batch_size": 8,
            "max_length": 24, "lr": 5e-3, "rank": 4, "alpha": 8, "optimizers": ("muon",)}
    base.update(kw)
    return FinetuneConfig(**base)


def _interrupt_at(n: int):
    def on_step(step, total):
        if step == n:
            raise KeyboardInterrupt  # like Ctrl-C (or a kill) after the previous checkpoint
    return on_step


@pytest.fixture(scope="module")
def straight_loss(bert_dir, tmp_path_factory) -> float:
    out = tmp_path_factory.mktemp("straight")
    finetune(_cfg(bert_dir), out, report=False)
    return float(ResultStore(out / "finetune").runs().iloc[0]["final_loss"])


def test_a_resumed_run_reports_the_final_loss_of_the_uninterrupted_one(bert_dir, tmp_path, straight_loss):
    cfg = _cfg(bert_dir)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, tmp_path, on_step=_interrupt_at(5), report=False)  # checkpoints 2 and 4 written
    finetune(cfg, tmp_path, report=False)
    run = ResultStore(tmp_path / "finetune").runs().iloc[0]
    assert bool(run["resumed"]) and run["steps"] == 6
    assert math.isfinite(straight_loss)
    assert run["final_loss"] == pytest.approx(straight_loss, rel=1e-6)


def test_a_checkpoint_without_its_loss_record_is_not_resumed_from(bert_dir, tmp_path, straight_loss):
    """Killed between the Trainer's checkpoint and muonlab's loss record: resume from the one before."""
    cfg = _cfg(bert_dir)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, tmp_path, on_step=_interrupt_at(5), report=False)
    records = sorted(tmp_path.glob("runs/muon-*/checkpoints/checkpoint-4/muonlab_loss.json"))
    assert len(records) == 1
    records[0].unlink()
    statuses: list[str] = []
    finetune(cfg, tmp_path, report=False, on_status=statuses.append)
    assert any("checkpoint-2" in s for s in statuses), statuses
    run = ResultStore(tmp_path / "finetune").runs().iloc[0]
    assert run["final_loss"] == pytest.approx(straight_loss, rel=1e-6)


# --- item 7 (finetune): messages and a fast offline Hub error --------------------------------

def test_the_n_error_names_the_option_not_the_library_field(tmp_path):
    result = runner.invoke(app, ["finetune", "--out", str(tmp_path / "o"), "--n", "1"])
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: Invalid value for '--n': ") and "n_examples" not in lines[0], lines[0]
    assert "allowed: an integer from 2 to 10000000" in lines[0], lines[0]


@pytest.mark.parametrize(("text", "where"), [
    ("text,label\ngood film,1\nbad film\ngreat,1\nawful,0\n", "line 3 has 1 field"),      # a short row
    ("text,label\ngood,film,1\nbad,film,0\n", "line 2 has 3 fields"),                     # long rows
    ("text,label\ngood film,1\nbad film,0,extra\ngreat,1\n", "line 3 has 3 fields"),     # one long row
])
def test_a_ragged_csv_names_its_first_bad_line(tmp_path, text, where):
    csv = tmp_path / "r.csv"
    csv.write_text(text)
    with pytest.raises(DataError, match="^data: ") as e:
        load_table(str(csv))
    assert where in str(e.value) and "header has 2" in str(e.value) and "classes" not in str(e.value)


def test_a_directory_is_not_called_a_hub_name(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataError, match="^data: ") as e:
        load_table(str(folder))
    assert "is a directory" in str(e.value) and "hub" not in str(e.value).lower()


@pytest.fixture
def offline(monkeypatch):
    """No network: every name lookup and connection fails at once (as on this machine)."""
    def fail(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    monkeypatch.setattr(socket, "create_connection", fail)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def test_an_unreachable_hub_model_fails_fast_in_one_line(tmp_path, offline):
    t0 = time.perf_counter()
    result = runner.invoke(app, ["finetune", "--out", str(tmp_path / "o"), "--model", "nosuchorg/nosuchmodel"])
    elapsed = time.perf_counter() - t0
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: Invalid value for '--model': ") and "nosuchorg/nosuchmodel" in lines[0]
    assert "unreachable" in lines[0] or "offline" in lines[0], lines[0]
    assert elapsed < 5, elapsed
    assert not (tmp_path / "o").exists()


def test_hub_offline_mode_fails_fast_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    result = runner.invoke(app, ["finetune", "--out", str(tmp_path / "o"), "--model", "nosuchorg/nosuchmodel"])
    lines = _lines(result.output)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "offline" in lines[0] and time.perf_counter() - t0 < 5, lines[0]


def test_an_unreachable_hub_dataset_fails_fast_without_calling_datasets(monkeypatch, offline):
    import sys
    import types

    calls: list[str] = []
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name, split=None: calls.append(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(DataError, match="^data: ") as e:
        load_table("someorg/somedata")
    assert "unreachable" in str(e.value) and not calls
