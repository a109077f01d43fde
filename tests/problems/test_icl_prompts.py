"""P2's Monte-Carlo training option (prompts, prompt_sampling): gradients, streams, hashes."""

from __future__ import annotations

import pytest
import torch

from muonlab.config.problems import ICLConfig
from muonlab.linalg.orthogonalize import orthogonalize
from muonlab.problems.icl import InContextRegression, LinearAttention


def test_prompt_gradient_matches_autograd_through_linear_attention() -> None:
    prob = InContextRegression(4, seed=[0, 1], kappa=[3.0, 30.0], prompts=7, prompt_sampling="fixed")
    G = torch.randn(2, 4, 4, dtype=torch.float64)
    x_q, h, y_q = prob.training_prompts()
    loss, grad = prob.prompt_loss_and_grad(G, x_q, h, y_q)
    # the transformer: prompts as tokens, K = Γᵀ, prediction = bottom-right entry
    att = LinearAttention(4, n_runs=2)
    with torch.no_grad():
        att.kq.copy_(G.mT)
    R, P, N, d = 2, 7, prob.n_design, 4
    Z = torch.zeros(R, P, d + 1, N + 1, dtype=torch.float64)
    Z[..., :d, :N] = prob.design().mT.unsqueeze(1)
    Z[..., d, :N] = (h.unsqueeze(-2) @ torch.linalg.inv(prob.covariance_matrix()).unsqueeze(1)
                     @ prob.design().mT.unsqueeze(1)).squeeze(-2)  # y_i = wᵀx_i with w = Σ⁻¹h
    Z[..., :d, N] = x_q
    y_hat = att(Z)
    ref = 0.5 * (y_hat - y_q).square().mean(-1)
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(grad, att.kq.grad.mT)


def test_fresh_prompts_are_unbiased_and_per_run() -> None:
    prob = InContextRegression(3, seed=[5], kappa=10.0, prompts=20000)
    G = torch.randn(1, 3, 3, dtype=torch.float64)
    _, (g,) = prob.loss_and_grad([G])
    torch.testing.assert_close(g, prob.grad([G])[0], rtol=0.1, atol=0.05)
    # a run's draws do not depend on its batch
    a = InContextRegression(3, seed=[5, 6], kappa=10.0, prompts=4).training_prompts()
    b = InContextRegression(3, seed=[6], kappa=10.0, prompts=4).training_prompts()
    torch.testing.assert_close(a[0][1], b[0][0])


def test_fixed_prompts_repeat_and_fresh_do_not() -> None:
    fixed = InContextRegression(3, seed=[1], prompts=5, prompt_sampling="fixed")
    fresh = InContextRegression(3, seed=[1], prompts=5)
    torch.testing.assert_close(fixed.training_prompts()[0], fixed.training_prompts()[0])
    assert not torch.equal(fresh.training_prompts()[0], fresh.training_prompts()[0])


def test_closed_form_default_unchanged() -> None:
    prob = InContextRegression(3, seed=[1], kappa=10.0)
    G = torch.randn(1, 3, 3, dtype=torch.float64)
    loss, (g,) = prob.loss_and_grad([G])
    torch.testing.assert_close(loss, prob.loss([G]))
    torch.testing.assert_close(g, prob.grad([G])[0])
    with pytest.raises(Exception, match="prompt_sampling"):
        InContextRegression(3, seed=[1], prompt_sampling="fixed")


def test_config_dump_omits_unset_prompt_fields() -> None:
    assert ICLConfig().model_dump(mode="json") == {"kind": "icl", "d": 20, "kappa": 1.0, "covariance": "rotated",
                                                   "n_design": None}
    assert ICLConfig(prompts=8).model_dump()["prompts"] == 8
    with pytest.raises(Exception, match="prompt_sampling"):
        ICLConfig(prompt_sampling="fixed")


def test_muon_on_gamma_is_muon_on_the_attention_weights() -> None:
    """msign(Gᵀ) = msign(G)ᵀ: stepping Γ with Muon is stepping K = Γᵀ (the transformer's weights)."""
    prob = InContextRegression(4, seed=[2], kappa=10.0, prompts=16, prompt_sampling="fixed")
    G = torch.zeros(1, 4, 4, dtype=torch.float64)
    att = LinearAttention(4, n_runs=1)
    x_q, h, y_q = prob.training_prompts()
    for _ in range(3):
        _, g = prob.prompt_loss_and_grad(G, x_q, h, y_q)
        G = G - 0.5 * orthogonalize(g, method="svd")
        _, gk = prob.prompt_loss_and_grad(att.kq.detach().mT, x_q, h, y_q)
        with torch.no_grad():
            att.kq -= 0.5 * orthogonalize(gk.mT, method="svd")
    torch.testing.assert_close(G, att.kq.detach().mT)
