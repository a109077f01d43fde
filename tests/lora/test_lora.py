"""muonlab.lora: PEFT adapters, the Muon/AdamW optimizers, the spectral monitor and
``muonlab finetune`` — on tiny BERT / RoBERTa / Llama models built from configs, through
the real Trainer and PEFT code paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from muonlab.cli import app
from muonlab.engine.store import ResultStore
from muonlab.errors import MuonlabError
from muonlab.linalg.orthogonalize import orthogonalize
from muonlab.lora.adapters import (
    LoraError,
    apply_lora,
    build_optimizer,
    lora_factors,
    parameter_groups,
)
from muonlab.lora.finetune import FinetuneConfig, default_model_path, finetune
from muonlab.lora.monitor import SpectralMonitor, adapter_spectra

runner = CliRunner()
F64 = torch.float64


def _bert(num_labels: int = 2, vocab: int = 120) -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=num_labels, max_position_embeddings=64)
    return BertForSequenceClassification(cfg)


def _batch(n: int = 8, length: int = 12, vocab: int = 120, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, length), generator=g), torch.randint(0, 2, (n,), generator=g)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """Tiny BERT (classification) and Llama (causal LM) folders with MiniLM's tokenizer."""
    root = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tok.pad_token_id))
    llama.save_pretrained(root / "llama")
    tok.save_pretrained(root / "llama")
    return root


# --- adapters -------------------------------------------------------------------------

def test_apply_lora_targets_and_factors():
    model = apply_lora(_bert(), r=4, alpha=8, task_type="SEQ_CLS")
    fs = lora_factors(model)
    assert [f.name.rsplit(".", 1)[-1] for f in fs] == ["query", "value"] * 2
    names = dict(model.named_modules())
    for f in fs:
        assert f.name in names  # the name as in model.named_modules()
        assert f.A.shape == (4, 32) and f.B.shape == (32, 4) and f.scaling == 2.0
        assert torch.count_nonzero(f.B) == 0  # PEFT init: ΔW = 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable) and all(("lora_" in n or "classifier" in n) for n in trainable)


def test_roberta_and_llama_default_and_named_targets():
    torch.manual_seed(0)
    rob = RobertaForSequenceClassification(RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=40))
    assert len(lora_factors(apply_lora(rob, r=2, task_type="SEQ_CLS"))) == 4
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    fs = lora_factors(apply_lora(llama, r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    assert [f.name.rsplit(".", 1)[-1] for f in fs] == ["q_proj", "v_proj"] * 2


@pytest.mark.parametrize(("kwargs", "field", "start"), [
    ({"target_modules": ["nope"]}, "target_modules", "target_modules: 'nope' matches no linear layer"),
    ({"target_modules": []}, "target_modules", "target_modules: give at least one module name"),
    ({"r": 33}, "r", "r: 33 exceeds layer"),
    ({"r": 0}, "r", "r: must be an integer >= 1, got 0"),
    ({"dropout": 1.0}, "dropout", "dropout: must be in [0, 1), got 1.0"),
    ({"alpha": 0.0}, "alpha", "alpha: must be > 0, got 0.0"),
    ({"task_type": "NOPE"}, "task_type", "task_type: unknown PEFT task type 'NOPE'"),
])
def test_apply_lora_bad_input_is_one_line_naming_the_keyword(kwargs, field, start):
    with pytest.raises(LoraError) as e:
        apply_lora(_bert(), **kwargs)
    assert isinstance(e.value, MuonlabError) and e.value.field == field
    msg = str(e.value)
    assert msg == e.value.message and msg.startswith(start) and "\n" not in msg
    assert "--" not in msg  # library messages name keywords, not command-line options
    if "matches no" in start:
        assert "query" in msg and "value" in msg  # lists what exists


def test_muon_updates_each_factor_with_its_orthogonalized_gradient():
    """One step with momentum 0 and the exact msign: ΔA = −η·0.2·sqrt(max(m, n))·msign(∇A)."""
    model = apply_lora(_bert(), r=4, task_type="SEQ_CLS")
    fs = lora_factors(model)
    with torch.no_grad():  # make ∇A ≠ 0 from the first step
        for f in fs:
            f.B.normal_(0, 0.02)
    lr = 1e-2
    opt = build_optimizer(model, "muon", lr=lr, momentum=0.0, nesterov=False, method="svd")
    groups = parameter_groups(opt)
    assert {id(p) for p in groups["muon"]} == {id(p) for f in fs for p in (f.A, f.B)}
    x, y = _batch()
    model(input_ids=x, labels=y).loss.backward()
    before = {id(p): p.detach().clone() for f in fs for p in (f.A, f.B)}
    grads = {id(p): p.grad.detach().clone() for f in fs for p in (f.A, f.B)}
    opt.step()
    for f in fs:
        for p in (f.A, f.B):
            m, n = p.shape
            step = p.detach() - before[id(p)]
            expected = -lr * 0.2 * math.sqrt(max(m, n)) * orthogonalize(grads[id(p)].double(), "svd").float()
            torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-7)
            sv = torch.linalg.svdvals(step.double() / (lr * 0.2 * math.sqrt(max(m, n))))
            assert torch.allclose(sv, torch.ones_like(sv), atol=1e-4)  # an orthogonalized step


def test_fallback_group_is_adamw():
    model = apply_lora(_bert(), r=4, task_type="SEQ_CLS")
    opt = build_optimizer(model, "muon", lr=3e-3, weight_decay=0.01)
    rest = parameter_groups(opt)["adamw"]
    names = {id(p): n for n, p in model.named_parameters()}
    assert rest and all("classifier" in names[id(p)] for p in rest)
    twins = [p.detach().clone().requires_grad_(True) for p in rest]
    ref = torch.optim.AdamW(twins, lr=3e-3, weight_decay=0.01)
    for seed in range(3):
        x, y = _batch(seed=seed)
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        for p, t in zip(rest, twins):
            t.grad = p.grad.detach().clone()
        opt.step()
        ref.step()
        for p, t in zip(rest, twins):
            torch.testing.assert_close(p.detach(), t.detach(), rtol=0, atol=1e-7)


def test_adamw_optimizer_and_errors():
    model = apply_lora(_bert(), r=4, task_type="SEQ_CLS")
    assert isinstance(build_optimizer(model, "adamw"), torch.optim.AdamW)
    with pytest.raises(LoraError, match="^name: unknown optimizer 'sgd'; allowed: muon, adamw$") as e:
        build_optimizer(model, "sgd")
    assert e.value.field == "name"
    with pytest.raises(LoraError, match="^model: has no LoRA adapters, which the 'muon' optimizer needs") as e:
        build_optimizer(_bert(), "muon")
    assert e.value.field == "model"


# --- monitor --------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(r=st.integers(1, 6), d_out=st.integers(6, 40), d_in=st.integers(6, 40), k=st.integers(1, 3),
       scaling=st.floats(0.1, 4.0), seed=st.integers(0, 1000))
def test_adapter_spectra_equal_a_full_svd(r, d_out, d_in, k, scaling, seed):
    from muonlab.lora.adapters import LoraFactor

    g = torch.Generator().manual_seed(seed)
    fs = [LoraFactor(f"m{i}", torch.nn.Parameter(torch.randn(r, d_in, generator=g)),
                     torch.nn.Parameter(torch.randn(d_out, r, generator=g)), scaling) for i in range(k)]
    spectra = adapter_spectra(fs)
    for f in fs:
        full = torch.linalg.svdvals(f.scaling * f.B.detach().double() @ f.A.detach().double())[:r]
        torch.testing.assert_close(spectra[f.name], full, rtol=1e-10, atol=1e-12)


def test_monitor_in_a_plain_loop_matches_full_svd_and_records_every_step(tmp_path):
    model = apply_lora(_bert(), r=4, alpha=8, task_type="SEQ_CLS")
    opt = build_optimizer(model, "muon", lr=5e-3)
    mon = SpectralMonitor(every=2, out=tmp_path / "mon", run_id="loop")
    mon.step(model, 0)
    for step in range(1, 7):
        x, y = _batch(seed=step)
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        mon.step(model, step)
        if step == 4:
            assert mon.flush() is not None
    snap = mon.snapshot(model)
    for f in lora_factors(model):
        full = torch.linalg.svdvals(f.scaling * f.B.detach().double() @ f.A.detach().double())[:4]
        torch.testing.assert_close(snap[f.name], full, rtol=1e-10, atol=1e-13)
    df = mon.frame()
    assert sorted(df["step"].unique()) == [0, 2, 4, 6]
    assert len(list((tmp_path / "mon").glob("part-*.parquet"))) == 1
    f0 = lora_factors(model)[0]
    last = df[(df["step"] == 6) & (df["metric"] == f"{f0.name}:singular_values")].sort_values("index")
    np.testing.assert_allclose(last["value"].to_numpy(), snap[f0.name].numpy())
    er = df[(df["step"] == 6) & (df["metric"] == f"{f0.name}:effective_rank")]["value"].item()
    p = snap[f0.name] / snap[f0.name].sum()
    assert er == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    zero = df[(df["step"] == 0) & df["metric"].str.endswith(":effective_rank")]["value"]
    assert (zero == 0).all()  # ΔW = 0 at PEFT's init: effective rank 0 by convention
    with pytest.raises(LoraError, match="^every: must be an integer >= 1, got 0$") as e:
        SpectralMonitor(every=0)
    assert e.value.field == "every"


# --- Trainer / finetune ---------------------------------------------------------------

def _cfg(model_dir: Path, **kw) -> FinetuneConfig:
    base = {"model": str(model_dir), "n_examples": 64, "max_steps": 6, "save_steps": 3, "batch_size": 8,
            "max_length": 24, "lr": 5e-3, "rank": 4, "alpha": 8}
    base.update(kw)
    return FinetuneConfig(**base)


def test_finetune_with_the_real_trainer_writes_store_and_report(tiny_dirs, tmp_path):
    cfg = _cfg(tiny_dirs / "bert")
    res = finetune(cfg, tmp_path)
    assert sorted(res.executed) == ["adamw", "muon"] and not res.failed
    store = ResultStore(tmp_path / "finetune")
    runs = store.runs().set_index("optimizer")
    assert (runs["status"] == "ok").all() and (runs["steps"] == 6).all()
    assert runs.loc["muon", "n_adapters"] == 4
    traj = store.trajectories()
    sv = traj[traj["metric"].str.endswith(":singular_values")]
    assert sorted(sv["step"].unique()) == list(range(7))  # every step, 0..6
    assert {"train_loss", "lr"} <= set(traj["metric"])
    html = (tmp_path / "report" / "index.html").read_text()
    for fig in ("effective_rank", "singular_values", "final_spectrum"):
        assert f"finetune_{fig}.png" in html and (tmp_path / "report" / f"finetune_{fig}.png").is_file()
    # a second call finds both runs in the store and runs nothing
    again = finetune(cfg, tmp_path)
    assert sorted(again.skipped) == ["adamw", "muon"] and not again.executed


def test_checkpoint_resume_continues_identically(tiny_dirs, tmp_path):
    cfg = _cfg(tiny_dirs / "bert", optimizers=("muon",))
    finetune(cfg, tmp_path / "straight", report=False)

    def interrupt(step, total):
        if step == 4:
            raise KeyboardInterrupt  # like Ctrl-C after the step-3 checkpoint
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, tmp_path / "resumed", on_step=interrupt, report=False)
    assert not (tmp_path / "resumed" / "finetune" / "runs.parquet").exists()
    res = finetune(cfg, tmp_path / "resumed", report=False)
    assert res.executed == ["muon"]
    a, b = (ResultStore(tmp_path / d / "finetune") for d in ("straight", "resumed"))
    ra, rb = a.runs().iloc[0], b.runs().iloc[0]
    assert bool(rb["resumed"]) and not bool(ra["resumed"])
    ta = a.trajectories().query("metric.str.endswith(':singular_values')", engine="python")
    tb = b.trajectories().query("metric.str.endswith(':singular_values')", engine="python")
    key = ["step", "metric", "index"]
    merged = ta.merge(tb, on=key, suffixes=("_a", "_b"))
    assert len(merged) == len(ta) == len(tb)  # no step lost or doubled across the resume
    np.testing.assert_allclose(merged["value_b"], merged["value_a"], rtol=1e-5, atol=1e-9)
    assert rb["eval_loss"] == pytest.approx(ra["eval_loss"], rel=1e-5)


def test_causal_lm_instruction_tuning_on_tiny_llama(tiny_dirs, tmp_path):
    rows = [{"instruction": f"Repeat the word {w}.", "input": "", "output": w} for w in
            ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "candle"] * 4]
    path = tmp_path / "alpaca.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = _cfg(tiny_dirs / "llama", data=str(path), task="causal_lm", target_modules=("q_proj", "v_proj"),
               n_examples=None, max_length=32, optimizers=("muon",))
    res = finetune(cfg, tmp_path / "out", report=False)
    assert res.executed == ["muon"], res.failed
    run = ResultStore(tmp_path / "out" / "finetune").runs().iloc[0]
    assert run["status"] == "ok" and run["n_adapters"] == 4 and math.isfinite(run["eval_loss"])


def test_a_failing_run_is_recorded_and_the_next_runs(tiny_dirs, tmp_path, monkeypatch):
    import muonlab.lora.finetune as ft

    real = ft._run_one

    def flaky(cfg, opt, *a, **k):
        if opt == "muon":
            raise RuntimeError("simulated failure\nsecond line")
        return real(cfg, opt, *a, **k)

    monkeypatch.setattr(ft, "_run_one", flaky)
    res = finetune(_cfg(tiny_dirs / "bert"), tmp_path, report=False)
    assert res.failed == {"muon": "RuntimeError: simulated failure"} and res.executed == ["adamw"]
    runs = ResultStore(tmp_path / "finetune").runs().set_index("optimizer")
    assert runs.loc["muon", "status"] == "failed" and runs.loc["adamw", "status"] == "ok"


# --- CLI ------------------------------------------------------------------------------

def _one_line_exit_2(args):
    result = runner.invoke(app, ["finetune", *args])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    return lines[0]


def test_cli_bad_inputs_are_one_line_exit_2(tiny_dirs, tmp_path):
    """The option comes from the error's field; the library's message follows it unchanged."""
    out = str(tmp_path / "o")
    bert = str(tiny_dirs / "bert")
    cases = [
        # the library's "<field>: " prefix is left out: the option names the field
        (["--model", str(tmp_path / "no" / "such" / "model")], "--model", "no such model folder"),
        (["--model", bert, "--data", str(tmp_path / "missing.csv")], "--data", "no such file or dataset"),
        (["--model", bert, "--target-modules", "nope", "--max-steps", "1"],
         "--target-modules", "'nope' matches no linear layer"),
        (["--model", bert, "--rank", "64", "--max-steps", "1"], "--rank", "64 exceeds layer"),
        (["--rank", "0"], "--rank", "Input should be greater than or equal to 1, got 0; allowed: an integer from 1"),
        (["--n", "1"], "--n", "Input should be greater than or equal to 2, got 1; allowed: an integer from 2"),
        (["--monitor-every", "0"], "--monitor-every", "Input should be greater than or equal to 1"),
        (["--lr", "-1"], "--lr", "Input should be greater than 0, got -1.0; allowed: a finite number > 0"),
        (["--task", "causal_lm", "--label-field", "y"], "--label-field",
         "only used with task 'classification'"),
        (["--optimizer", "sgd"], "--optimizer", "unknown 'sgd'; allowed: muon, adamw, both"),
    ]
    for args, option, message in cases:
        line = _one_line_exit_2(["--out", out, *args])
        assert line.startswith(f"Error: Invalid value for '{option}': {message}"), (args, line)
    assert not (tmp_path / "o" / "finetune" / "runs.parquet").exists()


@pytest.mark.parametrize(("field", "start"), [
    ("alpha", "Error: Invalid value for '--alpha': "),
    ("r", "Error: Invalid value for '--rank': "),
    ("every", "Error: Invalid value for '--monitor-every': "),
    (None, "Error: Invalid value: "),
    ("no_such_field", "Error: Invalid value: "),
])
def test_cli_names_the_option_of_the_error_field_not_of_the_text(monkeypatch, tmp_path, field, start):
    """The message below starts with another field and holds a flag: the CLI must ignore both."""
    import muonlab.lora.finetune as ft

    def bad(**options):
        raise LoraError("data: a message that mentions --data: twice", field=field)

    monkeypatch.setattr(ft, "config_from_options", bad)
    line = _one_line_exit_2(["--out", str(tmp_path / "o")])
    assert line.startswith(start + "data: a message that mentions --data: twice"), line


def test_cli_field_map_covers_exactly_the_finetune_options():
    """Every option the map names exists, every option but --out is reachable from a field,
    and every FinetuneConfig field maps to its option unless the CLI does not expose it."""
    import typer.main

    from muonlab.cli import _FINETUNE_OPTION_FOR_FIELD

    command = typer.main.get_command(app).commands["finetune"]  # type: ignore[attr-defined]
    options = {o for p in command.params for o in p.opts if o.startswith("--")}
    assert set(_FINETUNE_OPTION_FOR_FIELD.values()) | {"--out"} == options
    not_exposed = {"weight_decay", "momentum", "eval_fraction", "warmup_ratio"}
    assert set(FinetuneConfig.model_fields) - set(_FINETUNE_OPTION_FOR_FIELD) == not_exposed


def test_cli_finetune_runs_and_prints_the_table(tiny_dirs, tmp_path):
    csv = tmp_path / "d.csv"
    pd.DataFrame({"sentence": ["good film", "bad film", "great book", "awful book"] * 8,
                  "y": ["pos", "neg", "pos", "neg"] * 8}).to_csv(csv, index=False)
    result = runner.invoke(app, ["finetune", "--out", str(tmp_path / "o"), "--model", str(tiny_dirs / "bert"),
                                 "--data", str(csv), "--label-field", "y", "--max-steps", "3", "--save-steps", "2",
                                 "--optimizer", "muon", "--rank", "2", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    assert "muon" in result.output and "report:" in result.output


def test_tensorboard_option(tmp_path, monkeypatch):
    model = apply_lora(_bert(), r=2, task_type="SEQ_CLS")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(LoraError, match="^tensorboard: needs the 'tensorboard' package") as e:
            SpectralMonitor(tensorboard=tmp_path / "tb")
        assert e.value.field == "tensorboard"
        return
    mon = SpectralMonitor(tensorboard=tmp_path / "tb")
    mon.record(model, 0)
    mon.on_train_end(None, None, None)
    assert any((tmp_path / "tb").iterdir())


def test_a_killed_finetune_process_resumes_from_its_checkpoint(tiny_dirs, tmp_path):
    """SIGKILL right after the step-3 checkpoint (no chance to clean up), then the same command again.

    The child process holds still once checkpoint 3 and every callback's ``on_save``
    are done (it writes a marker file, then sleeps), so the kill always lands there:
    the test cannot race the run to its end, and fails if the process ended by itself.
    """
    import signal
    import subprocess
    import sys
    import time

    args = ["finetune", "--model", str(tiny_dirs / "bert"), "--n", "64", "--max-steps", "8", "--save-steps", "3",
            "--batch-size", "8", "--max-length", "24", "--lr", "5e-3", "--rank", "4", "--alpha", "8",
            "--optimizer", "muon"]
    killed = tmp_path / "killed"
    marker = tmp_path / "saved-step-3"
    hold_after_checkpoint_3 = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from transformers.trainer_callback import CallbackHandler\n"
        "marker = Path(sys.argv[1])\n"
        "on_save = CallbackHandler.on_save\n"
        "def hold(self, args, state, control):\n"
        "    control = on_save(self, args, state, control)\n"
        "    if state.global_step == 3:\n"
        "        marker.write_text('saved')\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "    return control\n"
        "CallbackHandler.on_save = hold\n"
        "sys.argv = ['muonlab', *sys.argv[2:]]\n"
        "from muonlab.cli import app\n"
        "app()\n"
    )
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", hold_after_checkpoint_3, str(marker), *args,
                                 "--out", str(killed)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before its step-3 checkpoint:\n" \
            + log.read_text(errors="replace")[-2000:]
        assert marker.exists(), "no step-3 checkpoint within 240 s:\n" + log.read_text(errors="replace")[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    ckpts = sorted(p.name for p in (killed / "runs").glob("muon-*/checkpoints/checkpoint-*"))
    assert ckpts == ["checkpoint-3"] and not (killed / "finetune" / "runs.parquet").exists()
    resumed = runner.invoke(app, [*args, "--out", str(killed)])
    assert resumed.exit_code == 0, resumed.output
    straight = runner.invoke(app, [*args, "--out", str(tmp_path / "straight")])
    assert straight.exit_code == 0, straight.output
    a = ResultStore(tmp_path / "straight" / "finetune")
    b = ResultStore(killed / "finetune")
    ra, rb = a.runs().iloc[0], b.runs().iloc[0]
    assert bool(rb["resumed"]) and rb["steps"] == ra["steps"] == 8
    assert rb["final_loss"] == pytest.approx(ra["final_loss"], rel=1e-6)  # the mean over all 8 steps (issue 14)
    sa = a.trajectories().query("metric.str.endswith(':singular_values')", engine="python")
    sb = b.trajectories().query("metric.str.endswith(':singular_values')", engine="python")
    merged = sa.merge(sb, on=["step", "metric", "index"], suffixes=("_a", "_b"))
    assert len(merged) == len(sa) == len(sb) and sorted(sb["step"].unique()) == list(range(9))
    np.testing.assert_allclose(merged["value_b"], merged["value_a"], rtol=1e-5, atol=1e-9)
