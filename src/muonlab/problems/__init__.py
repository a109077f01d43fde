"""Matrix problems of the seeds (SPEC §4), batched over runs.

=================  ==================  ==========  ======================================
kind               class               layout      source
=================  ==================  ==========  ======================================
``symmetric_mf``   SymmetricMF (P1)    symmetric   seed 001 §2.1 (arXiv 2601.13474)
``icl``            InContextRegression matrix      seed 001 §2.2, App. D–E
``two_factor_mf``  TwoFactorMF (P3)    product     seed 002 (arXiv 2606.30509)
``lora_mf``        LoRAMF (P4)         product     seed 000 (arXiv 2602.06385)
``regression``     MatrixRegression    matrix      seed 003 open question 1
=================  ==================  ==========  ======================================

Constructors take the shape fields as scalars and the *batchable* fields
(:data:`BATCHABLE`: ``seed``, ``kappa``, ``alpha``, ``gamma``) as a scalar or one
value per run; R = the number of seeds. Bad values raise ``ValueError`` with a
message that starts with the field's name.
"""

from muonlab.problems.base import LAYOUTS, Problem
from muonlab.problems.icl import (
    InContextRegression,
    LinearAttention,
    Prompts,
    attention_from_gamma,
    gamma_from_attention,
)
from muonlab.problems.lora_mf import LoRAMF
from muonlab.problems.regression import MatrixRegression
from muonlab.problems.symmetric_mf import SymmetricMF
from muonlab.problems.two_factor_mf import TwoFactorMF

BATCHABLE = ("seed", "kappa", "alpha", "gamma")

PROBLEMS: dict[str, type[Problem]] = {
    cls.kind: cls for cls in (SymmetricMF, InContextRegression, TwoFactorMF, LoRAMF, MatrixRegression)
}

__all__ = [
    "BATCHABLE",
    "LAYOUTS",
    "PROBLEMS",
    "InContextRegression",
    "LinearAttention",
    "LoRAMF",
    "MatrixRegression",
    "Problem",
    "Prompts",
    "SymmetricMF",
    "TwoFactorMF",
    "attention_from_gamma",
    "gamma_from_attention",
]
