"""Fixtures shared by the benchmark tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT folder with MiniLM's tokenizer (LoRA wraps 2 × query, value = 4 adapters)."""
    transformers = pytest.importorskip("transformers")  # the lora extra (third-party)
    pytest.importorskip("peft")
    import torch

    from muonlab.lora.finetune import default_model_path

    root = tmp_path_factory.mktemp("bench_bert")
    tok = transformers.AutoTokenizer.from_pretrained(str(default_model_path()))
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64)).save_pretrained(root)
    tok.save_pretrained(root)
    return root
