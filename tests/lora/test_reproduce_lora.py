"""``muonlab reproduce lora``: the fine-tuning experiment kind, end to end on a tiny BERT
(one Trainer run per optimizer × seed, store DIR/lora/, claims.json with k/n per seed,
the report's LoRA section with Figure 1), resume, and its place outside ``all``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")
pytest.importorskip("peft")

from muonlab.cli import app
from muonlab.config import ConfigError
from muonlab.engine.store import ResultStore
from muonlab.reproduce import discover, reproduce, resolve_names

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from muonlab.lora.finetune import default_model_path

    root = tmp_path_factory.mktemp("tiny") / "bert"
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64)).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def test_lora_is_listed_by_name_and_not_in_all():
    exps = discover()
    assert {"lora", "lora_roberta_sst2", "lora_llama_alpaca"} <= set(exps)
    assert all(exps[n].finetune for n in ("lora", "lora_roberta_sst2", "lora_llama_alpaca"))
    assert not {"lora", "lora_roberta_sst2", "lora_llama_alpaca"} & set(resolve_names("all", exps))
    assert resolve_names("lora", exps) == ["lora"]
    quick, paper = exps["lora"].config("quick"), exps["lora"].config("paper")
    assert len(quick.seeds) >= 3 and len(paper.seeds) >= 10 and quick.config_hash != paper.config_hash
    res = runner.invoke(app, ["reproduce", "--list", "--json"])
    entry = next(e for e in json.loads(res.stdout) if e["name"] == "lora")
    assert entry["kind"] == "finetune" and entry["seed"] == "000"


def test_bad_override_is_one_line_naming_the_field():
    exps = discover()
    with pytest.raises(ConfigError, match=r"finetune\.rank: .*greater than or equal to 1"):
        exps["lora"].config("quick", ["finetune.rank=0"])
    with pytest.raises(ConfigError, match=r"seeds: .*distinct"):
        exps["lora"].config("quick", ["seeds=[1, 1]"])
    with pytest.raises(ConfigError, match=r"finetune: seed: give the seeds"):
        exps["lora"].config("quick", ["finetune.seed=3"])


def test_reproduce_lora_runs_every_seed_resumes_and_reports(tiny_bert, tmp_path):
    out = tmp_path / "rep"
    sets = [f"finetune.model={tiny_bert}", "finetune.max_steps=4", "finetune.n_examples=48",
            "finetune.batch_size=8", "finetune.save_steps=2", "seeds=[0, 1]"]
    args = ["reproduce", "lora", "--quick", "--out", str(out), *(x for s in sets for x in ("--set", s))]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    runs = ResultStore(out / "lora").runs()
    assert sorted(zip(runs["optimizer"], runs["seed"])) == [("adamw", 0), ("adamw", 1), ("muon", 0), ("muon", 1)]
    assert (runs["status"] == "ok").all() and (runs["steps"] == 4).all() and runs["config_hash"].nunique() == 1
    claims = json.loads((out / "claims.json").read_text())
    assert [c["name"] for c in claims] == ["lora_muon_full_rank", "lora_muon_rank_above_adamw"]
    for c in claims:
        assert c["experiment"] == "lora" and c["n_total"] == 2 and c["unit"] == "seed" and c["seeds"] == ["0", "1"]
        assert c["scale"] == "custom"
    # the verdicts of a 4-step run on a tiny random BERT mean nothing; the measured numbers are there
    assert "smallest final erank" in claims[0]["detail"] and "smallest gap" in claims[1]["detail"]
    exps = json.loads((out / "experiments.json").read_text())
    assert exps[0]["name"] == "lora" and exps[0]["config_hash"] == runs["config_hash"].iloc[0]
    html = (out / "report" / "index.html").read_text()
    assert "lora_figure1.png" in html and "Figure 1 redrawn" in html and "lora_muon_rank_above_adamw" in html
    assert (out / "report" / "lora_figure1.png").is_file()
    # a rerun finds every run in the store
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "lora: 0 runs executed, 4 already in the store" in res.output
    # another configuration into the same store is refused before anything runs
    result = None
    with pytest.raises(Exception, match="holds runs of"):
        result = reproduce("lora", out, scale="quick", overrides=[*sets[:-1], "seeds=[0, 1, 2]"])
    assert result is None
