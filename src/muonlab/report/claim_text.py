"""The words the report shows beside a claim's verdict, and the findings that bear on it.

* :func:`statement` — the paper's statement in a few words: an explicit ``statement``
  in the claims.json entry if it has one, else the first sentence of the registered
  claim function's docstring (every shipped claim opens its docstring with it), cut to
  about :data:`STATEMENT_CHARS` characters; None for a name that is not registered
  (a claims.json written by another version).
* :func:`thresholds` — the thresholds the claim states (``need > 0.5``, ``need ≤ 0.01
  at the smallest α``): the ``need …`` phrases of its statement and of its detail, in
  order, once each.
* :func:`measured` — the measured numbers: the detail's opening sentences, up to its
  per-replicate listing (``[0] …``) or its count (``5/5 seeds hold …``), shortened; the
  full detail stays on the page, folded.
* :func:`load_findings` / :func:`findings_for` — the entries of ``findings.md`` (ours:
  results the papers do not state or that contradict a claim) and those that bear on a
  claim: named in its detail (``see docs/findings.md F4``) or naming the claim or its
  experiment in backticks.

``findings.md`` is read from the reproduction directory (``DIR/findings.md``) if there
is one, else from the repository's ``docs/findings.md`` when muonlab runs from a source
checkout; an installed wheel has no docs folder, and its report names the findings its
claims cite (``F4``) without their text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["Finding", "findings_for", "findings_path", "load_findings", "measured", "statement", "thresholds"]

STATEMENT_CHARS = 170
MEASURED_CHARS = 260

_NEED = re.compile(r"\bneed(?:s)?\s+(?:[^;,()\]]*?)(?:[<>≤≥]=?|=)\s*[^;,()\]\s]+(?:\s+at\s+the\s+\w+\s+[^\s()]+)?")
_FINDING_REF = re.compile(r"\bF(\d{1,3})\b")
_HEAD = re.compile(r"^##\s+F(\d+)\.\s+(.*)$")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " …"


#: Words whose full stop does not end a sentence (the docstrings cite "App. D", "Eqs. 3–4").
_ABBREVIATIONS = {"app", "eq", "eqs", "thm", "thms", "prop", "fig", "figs", "sec", "e.g", "i.e", "cf", "vs", "al",
                  "resp", "approx", "def", "lem", "cor"}


def _first_sentence(doc: str) -> str:
    para = " ".join(doc.strip().split("\n\n", 1)[0].split())
    para = re.sub(r":(?:func|class|mod|meth|data):`~?([^`]+)`", r"\1", para).replace("``", "")
    for m in re.finditer(r"(\S+)\.(?=\s+[A-Z(\"])", para):
        if m.group(1).lower().strip("(") not in _ABBREVIATIONS and len(m.group(1)) > 1:
            return para[: m.end()]
    return para


@cache
def _docstrings() -> dict[str, str]:
    try:
        from muonlab.claims import registered_claims
    except ImportError:  # pragma: no cover - the claims package is part of muonlab
        return {}
    return {name: d.fn.__doc__ or "" for name, d in registered_claims().items()}


def statement(claim: Mapping[str, Any]) -> str | None:
    """The claim's statement in a few words (see the module docstring), or None."""
    explicit = claim.get("statement")
    if isinstance(explicit, str) and explicit.strip():
        return _shorten(explicit, STATEMENT_CHARS)
    doc = _docstrings().get(str(claim.get("name")))
    if not doc:
        return None
    return _shorten(_first_sentence(doc), STATEMENT_CHARS) or None


def full_statement(claim: Mapping[str, Any]) -> str | None:
    """The docstring's first paragraph (the tooltip of the short statement)."""
    doc = _docstrings().get(str(claim.get("name")))
    if not doc:
        return None
    para = " ".join(doc.strip().split("\n\n", 1)[0].split())
    return re.sub(r":(?:func|class|mod|meth|data):`~?([^`]+)`", r"\1", para).replace("``", "")


_COMPARISON = re.compile(r"(?:[\w|κ′'*/-]+\s){0,3}[\w|κ′'*/)-]+\s?(?:<=|>=|[<>≤≥])\s?-?\d[\d.e+-]*(?:\s?[%×])?")


_STOP = {"over", "the", "and", "of", "with", "in", "at", "to", "a", "an", "for", "by", "on", "is", "are", "per"}


def thresholds(*texts: str | None, limit: int = 3) -> list[str]:
    """The thresholds stated in ``texts``: their ``need …`` phrases, then their
    comparisons with a number (``Muon |κ-slope| < 0.1``), in order, each once, at most
    ``limit``."""
    out: list[str] = []
    joined = [" ".join((t or "").split()) for t in texts]
    for pattern in (_NEED, _COMPARISON):
        for text in joined:
            for m in pattern.finditer(text):
                phrase = m.group(0).strip().rstrip(".:;")
                words = phrase.split()
                while len(words) > 2 and words[0].lower() in _STOP:
                    words = words[1:]
                phrase = " ".join(words)
                if phrase.count("(") != phrase.count(")") or words[0].lower() in _STOP:
                    continue
                if pattern is _COMPARISON and not re.match(r"[^\W\d]", words[0]):
                    continue  # "56 > 1.5", ">= 3": a measured number, not a threshold
                if phrase and not any(phrase in o or o in phrase for o in out):
                    out.append(phrase)
    return out[:limit]


def measured(detail: Any) -> str | None:
    """The detail's opening sentences, before its per-replicate listing or its count."""
    if not isinstance(detail, str) or not detail.strip():
        return None
    text = " ".join(detail.split())
    for pattern in (r"\s\[\w+\]\s", r"\s\d+/\d+ \w+ holds? \(", r"\s0 \w+s\.", r" FAIL\b"):
        m = re.search(pattern, text)
        if m and m.start() > 20:
            text = text[: m.start()]
    return _shorten(text, MEASURED_CHARS)


# ----------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One ``## F<n>. title`` entry of findings.md."""

    id: str  # "F4"
    title: str
    summary: str  # its first paragraph, plain text
    body: str  # the whole entry (markdown source)


def findings_path(root: Path) -> Path | None:
    """``root/findings.md``, else the source checkout's ``docs/findings.md``, else None."""
    for path in (root / "findings.md", Path(__file__).resolve().parents[3] / "docs" / "findings.md"):
        if path.is_file():
            return path
    return None


def load_findings(root: Path) -> tuple[list[Finding], Path | None]:
    """The findings entries (in file order) and the file they came from."""
    path = findings_path(root)
    if path is None:
        return [], None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return [], None
    entries: list[Finding] = []
    cur: list[str] | None = None
    head: tuple[str, str] | None = None

    def close() -> None:
        if head is not None and cur is not None:
            body = "\n".join(cur).strip()
            paras = [p for p in re.split(r"\n\s*\n", body) if p.strip() and not p.lstrip().startswith(("```", "|"))]
            summary = _shorten(re.sub(r"[*`]", "", paras[0]) if paras else "", 400)
            entries.append(Finding(f"F{head[0]}", head[1].strip(), summary, body))

    for line in text.splitlines():
        m = _HEAD.match(line)
        if m:
            close()
            head, cur = (m.group(1), m.group(2)), []
        elif line.startswith("## "):
            close()
            head, cur = None, None
        elif cur is not None:
            cur.append(line)
    close()
    return entries, path


def findings_for(claim: Mapping[str, Any], findings: Sequence[Finding]) -> list[str]:
    """The ids of the findings that bear on ``claim`` (see the module docstring); ids cited
    in its detail come first, and are kept even when ``findings`` lacks their text."""
    raw = claim.get("detail")
    detail = raw if isinstance(raw, str) else ""
    cited = [f"F{n}" for n in _FINDING_REF.findall(detail)] if "findings" in detail else []
    names = [f"`{claim.get('name')}`"]
    if claim.get("experiment"):
        names.append(f"`{claim.get('experiment')}`")
    out = list(dict.fromkeys(cited))
    for f in findings:
        if f.id not in out and any(n in f.title or n in f.body for n in names):
            out.append(f.id)
    return out
