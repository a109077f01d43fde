"""The report's per-replicate verdicts: each claim's k/n, 95 % interval, rule, scale and
strip of replicates (``muonlab.report.verdicts``, ``macros.html.j2``), the summary's
passed / failed counts and scales, and claims.json files written before those fields."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest

from muonlab.claims.base import Outcome, clopper_pearson, decide
from muonlab.engine.store import ResultStore
from muonlab.report import build_report
from muonlab.report.verdicts import ScaleCount, Square, scale_counts, verdict_of


def _outcomes(n: int, failing: frozenset[str] = frozenset()) -> list[Outcome]:
    return [Outcome(str(i), str(i) not in failing, "too slow" if str(i) in failing else "") for i in range(n)]


def _claims() -> list[dict]:
    """A 5/5 pass, a 3/5 fail (seeds 1 and 4), an old-format entry and a required < 1
    claim over runs, as :func:`muonlab.claims.evaluate_claims` writes them."""
    good = decide("all_seeds", "001", "Muon reaches 1e-8.", _outcomes(5)).with_experiment("exp_v")
    bad = decide("two_of_five_fail", "002", "Aligned after two steps.", _outcomes(5, frozenset({"1", "4"})))
    most = decide("most_runs", "000", "Stable above the edge.",
                  [Outcome(f"η={lr}/seed {s}", (lr, s) != (2.8, 1)) for lr in (1.0, 2.8) for s in range(10)],
                  required=0.7, unit="run")
    old = {"name": "old_format", "seed": "000", "passed": True, "detail": "steps 66 <= 100", "experiment": "exp_v"}
    return [good.with_scale("quick").to_dict(), bad.with_scale("quick").to_dict(), old,
            most.with_scale("paper").to_dict()]


class _Claims(HTMLParser):
    """Per claims table (by class) and row (by data-claim): the verdict cell's text and its
    squares as (pass|fail, title)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, dict]] = {}
        self._table: str | None = None
        self._row: dict | None = None
        self._in_verdict = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "table":
            self._table = cls
            self.tables.setdefault(cls, {})
        elif tag == "tr" and self._table is not None and "data-claim" in a:
            self._row = {"text": [], "squares": []}
            self.tables[self._table][a["data-claim"]] = self._row
        elif tag == "td" and self._row is not None:
            self._in_verdict = a.get("data-col") == "verdict"
        elif tag == "span" and self._in_verdict and cls.split()[:1] == ["sq"]:
            assert self._row is not None
            self._row["squares"].append((cls.split()[1], a.get("title")))

    def handle_data(self, data):
        if self._in_verdict and self._row is not None:
            self._row["text"].append(data)

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_verdict = False
        elif tag == "table":
            self._table = None


def _verdicts(index: Path) -> _Claims:
    page = _Claims()
    page.feed(index.read_text(encoding="utf-8"))
    page.close()
    return page


def _text(row: dict) -> str:
    return " ".join("".join(row["text"]).split())


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verdicts")
    # A store whose runs all failed: a section (and its claims table) without solving anything.
    rows = [{"run_id": f"r{s}", "experiment": "exp_v", "seed": s, "optimizer.name": "muon", "optimizer.lr": 0.1,
             "problem.kappa": 10.0, "status": "failed", "error": "boom"} for s in range(2)]
    ResultStore(root / "exp_v").append(rows)
    (root / "claims.json").write_text(json.dumps(_claims()), encoding="utf-8")
    return build_report(root)


# ----------------------------------------------------------------------------- the page


def test_each_claim_shows_count_interval_rule_scale_and_strip(report):
    rows = _verdicts(report).tables["claims"]
    # grouped by paper seed (000, 001, 002), each group in claims.json's order
    assert list(rows) == ["old_format", "most_runs", "all_seeds", "two_of_five_fail"]

    good = rows["all_seeds"]
    assert "5/5 seeds" in _text(good)
    lo, hi = clopper_pearson(5, 5)
    assert f"95% CI {lo:.2f}–{hi:.2f}" in _text(good)
    assert _text(good) == "5/5 seeds95% CI 0.48–1.00 · need all · scale: quick"
    assert good["squares"] == [("pass", str(i)) for i in range(5)]

    bad = rows["two_of_five_fail"]
    assert _text(bad) == "3/5 seeds95% CI 0.15–0.95 · need all · scale: quick"
    assert [c for c, _ in bad["squares"]].count("pass") == 3
    assert [t for c, t in bad["squares"] if c == "fail"] == ["1", "4"]
    assert [t for _, t in bad["squares"]] == ["0", "1", "2", "3", "4"]  # every replicate, in order

    most = rows["most_runs"]
    lo, hi = clopper_pearson(19, 20)
    assert lo >= 0.7  # the claim passes on its lower bound, with one failing run
    assert _text(most) == f"19/20 runs95% CI {lo:.2f}–{hi:.2f} · need ≥ 0.7 lower bound · scale: paper"
    assert len(most["squares"]) == 20
    assert [t for c, t in most["squares"] if c == "fail"] == ["η=2.8/seed 1"]


def test_old_format_claim_renders_without_a_strip(report):
    rows = _verdicts(report).tables["claims"]
    old = rows["old_format"]
    assert _text(old) == "—" and old["squares"] == []
    text = report.read_text(encoding="utf-8")
    assert "steps 66 &lt;= 100" in text


def test_summary_counts_passed_failed_and_scales(report):
    text = report.read_text(encoding="utf-8")
    summary = text[text.index('id="claims-summary"'):]
    summary = summary[:summary.index("</div>")]
    assert "<strong>3 / 4</strong> claims passed" in summary
    assert '<span class="n-failed">1 failed</span>' in summary
    assert "scales:" in summary
    assert '<strong data-scale="quick">quick</strong> (1/2 passed)' in summary
    assert '<strong data-scale="paper">paper</strong> (1/1 passed)' in summary
    assert "failing: <strong>two_of_five_fail</strong>" in summary


def test_section_claims_show_the_strip_too(report):
    local = _verdicts(report).tables["claims-local"]
    assert list(local) == ["all_seeds", "old_format"]  # the claims on exp_v
    assert local["all_seeds"]["squares"] == [("pass", str(i)) for i in range(5)]
    assert _text(local["old_format"]) == "—"


def test_labels_and_scale_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    claim = decide(f"c{evil}", "001", f"detail {evil}", [Outcome("0", True), Outcome(f"s{evil}", False, evil)])
    (tmp_path / "claims.json").write_text(json.dumps([claim.with_scale(evil).to_dict()]), encoding="utf-8")
    index = build_report(tmp_path)
    text = index.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert 'title="s&lt;script&gt;alert(1)&lt;/script&gt;"' in text
    assert "scale: &lt;script&gt;" in text and 'data-scale="&lt;script&gt;' in text
    assert 'aria-label="1 of 2 seeds hold; failing: s&lt;script&gt;' in text
    row = _verdicts(index).tables["claims"][f"c{evil}"]
    assert row["squares"] == [("pass", "0"), ("fail", f"s{evil}")]
    summary = text[text.index('id="claims-summary"'):]
    assert "scale: <strong" in summary[:summary.index("</div>")]  # one scale: no per-scale counts


# ----------------------------------------------------------------------------- verdict_of


def test_verdict_of_new_entry():
    v = verdict_of(_claims()[1])
    assert v is not None
    assert (v.count, v.interval, v.rule, v.scale) == ("3/5 seeds", "95% CI 0.15–0.95", "need all", "quick")
    assert v.squares == tuple(Square(str(i), i not in (1, 4)) for i in range(5))
    assert v.summary == "3 of 5 seeds hold; failing: 1, 4"


def test_verdict_of_old_and_partial_entries():
    assert verdict_of({"name": "x", "seed": "000", "passed": True, "detail": "d"}) is None
    # whatever is there is shown; malformed fields are left out, never raised on
    v = verdict_of({"scale": "paper", "n_total": "7", "n_pass": True, "ci_low": math.nan, "ci_high": None,
                    "required": "all", "seeds": "0,1"})
    assert v is not None
    assert (v.count, v.interval, v.rule, v.scale, v.squares) == (None, None, None, "paper", ())
    v = verdict_of({"n_total": 4.0, "n_pass": 4.0, "unit": "instance", "required": 1})
    assert v is not None and (v.count, v.rule) == ("4/4 instances", "need all")
    v = verdict_of({"n_total": 1, "n_pass": 0, "unit": "instance", "failing_seeds": ["instance"],
                    "seeds": ["instance"]})
    assert v is not None and v.count == "0/1 instance" and v.squares == (Square("instance", False),)
    v = verdict_of({"n_total": 0, "n_pass": 0, "ci_low": None, "ci_high": None, "seeds": []})
    assert v is not None and (v.count, v.interval, v.squares) == ("0 seeds", "no interval", ())


def test_verdict_of_strip_labels():
    # repeated labels: one failing entry marks one replicate; seeds given as JSON numbers print as ints
    v = verdict_of({"seeds": [0, 1.0, 1, 2], "failing_seeds": ["1"]})
    assert v is not None and v.squares == (Square("0", True), Square("1", False), Square("1", True),
                                           Square("2", True))
    # a failing label missing from seeds (or no seeds at all) is still shown, as failing
    v = verdict_of({"seeds": ["0"], "failing_seeds": ["9"]})
    assert v is not None and v.squares == (Square("0", True), Square("9", False))


def test_scale_counts():
    claims = [{"scale": "quick", "passed": True}, {"scale": "paper", "passed": False}, {"passed": True},
              {"scale": "quick", "passed": False}, {"scale": None, "passed": True}]
    assert scale_counts(claims) == [ScaleCount("quick", 1, 2), ScaleCount("paper", 0, 1)]
    assert scale_counts([]) == []
