"""The shipped paper settings of seed 000 App. E.2.1 (RoBERTa-base/SST-2, LLaMA-3.2-1B/Alpaca):
their architectures, written into the experiment YAMLs, are built on the ``meta`` device
(no weights, no network), LoRA is applied as the runs would apply it, and every adapter's
shape is checked."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

import torch

from muonlab.lora.adapters import apply_lora, check_lora_targets, lora_factors
from muonlab.reproduce import SHIPPED_ROOT, discover

# name: (model_type, layers, {target: (d_out, d_in)}, parameters in billions (with the task head))
PAPER = {
    "lora_roberta_sst2": ("roberta", 12, {"query": (768, 768), "value": (768, 768)}, 0.125),
    # Llama-3.2-1B: 32 query heads and 8 key/value heads of dimension 64
    "lora_llama_alpaca": ("llama", 16, {"q_proj": (2048, 2048), "v_proj": (512, 2048)}, 1.236),
}


def _skeleton(exp):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    arch = dict(exp.architecture)
    cfg = exp.configs()[0]
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    if cfg.task == "classification":
        config.num_labels = 2
        auto = AutoModelForSequenceClassification
    else:
        auto = AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config), cfg


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_config_builds_on_meta_and_gets_the_papers_adapters(name):
    exps = discover(SHIPPED_ROOT)
    exp_def = exps[name]
    assert exp_def.finetune and exp_def.spec.seed == "000"
    assert set(exp_def.spec.claims) == {"lora_muon_full_rank", "lora_muon_rank_above_adamw"}
    exp = exp_def.config("paper")
    model_type, layers, shapes, billions = PAPER[name]
    assert exp.architecture["model_type"] == model_type
    assert len(exp.seeds) >= 10 and len(exp_def.config("quick").seeds) >= 3
    model, cfg = _skeleton(exp)
    assert all(p.device.type == "meta" for p in model.parameters())
    n_params = sum(p.numel() for p in model.parameters()) / 1e9
    assert n_params == pytest.approx(billions, rel=0.02)
    # the seed's LoRA: r = 8 on the query and value matrices, Muon and AdamW
    assert cfg.rank == 8 and tuple(cfg.target_modules) == tuple(shapes) and cfg.optimizers == ("muon", "adamw")
    check_lora_targets(model, cfg.rank, cfg.target_modules)
    peft_model = apply_lora(model, r=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout,
                            target_modules=list(cfg.target_modules),
                            task_type="SEQ_CLS" if cfg.task == "classification" else "CAUSAL_LM")
    factors = lora_factors(peft_model)
    assert len(factors) == layers * len(shapes)
    for f in factors:
        target = next(t for t in shapes if f.name.endswith(t))
        d_out, d_in = shapes[target]
        assert tuple(f.A.shape) == (cfg.rank, d_in), f.name
        assert tuple(f.B.shape) == (d_out, cfg.rank), f.name
        assert f.A.requires_grad and f.B.requires_grad
        assert f.scaling == pytest.approx(cfg.alpha / cfg.rank)
    # Figure 1's adapter: the first layer's query
    from muonlab.report.lora_figures import first_query_adapter

    first = first_query_adapter([f.name for f in factors])
    assert first is not None and first.endswith(next(iter(shapes))) and (".layer.0." in first or ".layers.0." in first)
