r"""``torch.optim.Optimizer`` shells around :mod:`muonlab.optim.updates`.

Each class validates its hyper-parameters, gathers parameters, gradients and lazily
created state per param group, and calls the pure update rule.  Hyper-parameters are
read from ``group[...]`` at every step, so any ``torch.optim.lr_scheduler`` (or
:class:`muonlab.optim.schedules.ScheduleLR`) works unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from muonlab.errors import MuonlabError
from muonlab.linalg.orthogonalize import METHODS, resolve_coefficients
from muonlab.optim import updates
from muonlab.optim.updates import ADJUST_LR, MOMENTUM_FORMS

__all__ = [
    "Muon", "NonFiniteGradientError", "NonFiniteUpdateError", "ScaledGD", "SignGD", "SpecGD", "torch_compatible_muon",
]

_ALGORITHMS = ("muon", "adamw")


class NonFiniteGradientError(MuonlabError):
    """A gradient holds NaN or Inf; raised by ``step()`` before anything was changed.

    ``group`` and ``index`` locate the parameter: ``optimizer.param_groups[group]["params"][index]``.
    Catching it and going on *is* skipping the step (GradScaler's policy): parameters,
    momentum buffers and AdamW moments are exactly as before the call.
    """

    def __init__(self, message: object, group: int, index: int) -> None:
        super().__init__(message, field="params")
        self.group = group
        self.index = index


class NonFiniteUpdateError(NonFiniteGradientError):
    """Finite gradients gave a non-finite step (the momentum buffer or the update overflowed,
    or the SVD failed on it); raised before anything was changed, like its base class."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise MuonlabError(f"{name}: a tensor {name} must have one element", field=name)
        value = float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise MuonlabError(f"{name}: must be a number, got {value!r}", field=name)
    return float(value)


def _check_nonneg(name: str, value: Any) -> None:
    """``value`` is a finite number >= 0 (lr, weight decay, beta, damping)."""
    x = _number(name, value)
    if not (math.isfinite(x) and x >= 0.0):
        raise MuonlabError(f"{name}: must be a finite number >= 0, got {value!r}", field=name)


def _check_positive(name: str, value: Any) -> None:
    """``value`` is a finite number > 0 (eps)."""
    x = _number(name, value)
    if not (math.isfinite(x) and x > 0.0):
        raise MuonlabError(f"{name}: must be a finite number > 0, got {value!r}", field=name)


def _check_unit(name: str, value: Any) -> None:
    """``value`` is a number in [0, 1) (momentum, an Adam beta)."""
    x = _number(name, value)
    if not 0.0 <= x < 1.0:
        raise MuonlabError(f"{name}: must be a number in [0, 1), got {value!r}", field=name)


def _check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise MuonlabError(f"{name}: unknown {value!r}; allowed: {', '.join(allowed)}", field=name)


def _all_finite(tensors: list[Tensor]) -> bool:
    """True when every entry of every tensor is finite; one host sync per device.

    A sum is non-finite whenever one of its terms is, so finite sums prove it at the
    cost of one reduction per tensor (``isfinite().all()`` measured ~20x slower on CPU).
    A sum can also overflow from finite terms; then the exact check decides.
    """
    sums: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        sums.setdefault(t.device, []).append(t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32))
    if all(bool(torch.isfinite(torch.stack(s)).all()) for s in sums.values()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _where(group: int, index: int, p: Tensor) -> str:
    return f"param_groups[{group}]['params'][{index}] (shape {tuple(p.shape)})"


class _GroupwiseOptimizer(Optimizer):
    """Shared ``step``: evaluate the closure, check every gradient, then update each group.

    The check runs over all param groups before anything changes, so a step either
    updates every parameter or raises and changes nothing (docs/optimizers.md, "Bad
    gradients"): a sparse or complex gradient, or a NaN/Inf entry, raises one
    ``ValueError`` naming ``param_groups[g]['params'][i]`` and its shape.
    """

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after checking its hyper-parameters and refusing complex parameters."""
        self._validate_hyperparameters(dict(self.defaults, **param_group))
        params = param_group["params"]
        if not isinstance(params, (Tensor, set)):  # a generator is read once (torch refuses sets)
            param_group = dict(param_group, params=list(params))
        group = len(self.param_groups)
        for i, p in enumerate(_as_list(param_group["params"])):
            if isinstance(p, Tensor) and torch.is_complex(p):
                raise MuonlabError(
                    f"params: {_where(group, i, p)} is complex ({p.dtype}); {type(self).__name__} "
                    "supports real floating-point parameters only", field="params"
                )
        super().add_param_group(param_group)

    def _validate_hyperparameters(self, h: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    # The closure returns the loss Tensor (torch's stub says float).
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Perform one optimization step; ``closure`` re-evaluates the loss.

        Raises (before changing anything): ``ValueError`` for a sparse or complex
        gradient or a non-finite ``lr``, :class:`NonFiniteGradientError` for a gradient
        with NaN/Inf entries.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_step()
        self._apply()
        return loss

    def _apply(self) -> None:
        """Update every param group (the gradients are checked)."""
        for group in self.param_groups:
            self._step_group(group)

    def _check_step(self) -> None:
        """Validate every gradient (and float lr) of this step; raise before any change.

        One host sync per device for the finiteness check; the position of a bad
        gradient is looked up only after the check failed.
        """
        found: list[tuple[int, int, Tensor, Tensor]] = []
        for gi, group in enumerate(self.param_groups):
            lr = group.get("lr")
            if isinstance(lr, float) and not (math.isfinite(lr) and lr >= 0.0):
                raise MuonlabError(
                    f"lr: param_groups[{gi}] has lr={lr!r} (a scheduler may have set it); "
                    "must be a finite number >= 0", field="lr"
                )
            for i, p in enumerate(group["params"]):
                g = p.grad
                if g is None:
                    continue
                if torch.is_complex(p) or torch.is_complex(g):
                    raise MuonlabError(
                        f"params: {_where(gi, i, p)} has a complex gradient; "
                        f"{type(self).__name__} supports real parameters only", field="params"
                    )
                if g.layout != torch.strided:
                    raise MuonlabError(
                        f"params: {_where(gi, i, p)} has a sparse gradient ({g.layout}); "
                        f"{type(self).__name__} needs dense gradients", field="params"
                    )
                found.append((gi, i, p, g))
        if _all_finite([g for _, _, _, g in found]):
            return
        for gi, i, p, g in found:
            if not bool(torch.isfinite(g).all()):
                raise NonFiniteGradientError(
                    f"params: {_where(gi, i, p)} has a non-finite gradient (NaN or Inf); "
                    "the step was not taken and nothing was changed", gi, i
                )

    def _step_group(self, group: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _with_grads(group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        """The group's parameters that have a gradient, and those gradients (checked by ``step``)."""
        params = [p for p in group["params"] if p.grad is not None]
        return params, [p.grad for p in params]

    def _momentum_buffer(self, p: Tensor, momentum: float) -> Tensor | None:
        """The parameter's momentum buffer, created lazily; None when momentum is 0."""
        if momentum == 0.0:
            return None
        state = self.state[p]
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return buf


class Muon(_GroupwiseOptimizer):
    r"""Muon: momentum orthogonalized by Newton–Schulz (Jordan et al. 2024), with an AdamW fallback.

    .. math::
        \begin{aligned}
        &M_t = \mu M_{t-1} + G_t, \qquad
          D_t = \begin{cases} G_t + \mu M_t & \text{Nesterov} \\ M_t \end{cases} \\
        &W_t = (1 - \eta\lambda) W_{t-1} - \eta\,\mathrm{scale}(m, n)\,\mathrm{orth}(D_t)
        \end{aligned}

    With ``momentum=0`` this is the simplified Muon / spectral gradient descent
    analysed in seeds 000–003 (Kang et al. 2602.06385; Ma et al. 2601.13474;
    Rhee et al. 2606.30509): :math:`W \leftarrow W - \eta\,\mathrm{orth}(\nabla f)`.

    Routing: every parameter with ``ndim >= 2`` is optimized by Muon (an N-D tensor
    is viewed as ``(shape[0], prod(shape[1:]))``, see
    :func:`muonlab.optim.updates.as_matrix`); parameters with ``ndim < 2`` and every
    parameter in ``adamw_params`` go to AdamW.  Routing happens when a param group is
    added: a user group is split into a ``"muon"`` group and an ``"adamw"`` group
    (each group has an ``"algorithm"`` key; pass ``algorithm="adamw"`` in a group to
    route all of it).  AdamW groups take ``lr=adamw_lr`` (default: ``lr``) and
    ``weight_decay=adamw_weight_decay`` (default: ``weight_decay``), so LR schedulers
    scale both parts in proportion.

    Args:
        params: parameters or param groups.
        lr: step size η.
        momentum: μ in [0, 1) (0: no momentum buffer).
        nesterov: use the Nesterov direction.
        weight_decay: decoupled weight decay λ (multiplies η, unscaled).
        method: ``newton_schulz``, ``polar_express``, ``svd`` or ``beta``.
        coefficients: Newton–Schulz preset (``keller``, ``dion``) or table.
        ns_steps: number of polynomial steps (default: 5).
        ns_dtype: dtype of the orthogonalization (default: the gradient's dtype).
        adjust_lr: ``none`` | ``original`` | ``match_rms_adamw`` (SPEC §2).
        beta: β of ``T_β`` (``method="beta"``).
        eps: floor of ‖D‖_F in the Newton–Schulz normalization (a finite number > 0).
        momentum_form: ``sum`` (M ← μM + G, the papers') or ``ema``
            (torch.optim.Muon's M ← μM + (1−μ)G); equal after orthogonalization up
            to rounding.
        adamw_params: parameters routed to AdamW regardless of shape.
        adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay: the AdamW fallback.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        method: str = "newton_schulz",
        coefficients="keller",
        ns_steps: int | None = None,
        ns_dtype: torch.dtype | None = None,
        adjust_lr: str = "none",
        beta: float = 0.0,
        eps: float = 1e-7,
        momentum_form: str = "sum",
        adamw_params=None,
        adamw_lr: float | None = None,
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
        adamw_weight_decay: float | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            method=method,
            coefficients=coefficients,
            ns_steps=ns_steps,
            ns_dtype=ns_dtype,
            adjust_lr=adjust_lr,
            beta=beta,
            eps=eps,
            momentum_form=momentum_form,
            adamw_lr=adamw_lr,
            adamw_betas=tuple(adamw_betas),
            adamw_eps=adamw_eps,
            adamw_weight_decay=adamw_weight_decay,
        )
        _validate_muon_hyperparameters(defaults)
        groups = _as_groups(params)
        if adamw_params is not None:
            groups += [dict(g, algorithm="adamw") for g in _as_groups(adamw_params)]
        super().__init__(groups, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, splitting it into its Muon (matrix) and AdamW parts.

        Hyper-parameters a group overrides are validated like the constructor's
        (each part again, by the base class, when it is added).
        """
        _validate_muon_hyperparameters(dict(self.defaults, **param_group))
        algorithm = param_group.get("algorithm")
        if algorithm is not None:
            _check_choice("algorithm", algorithm, _ALGORITHMS)
            if algorithm == "adamw":
                super().add_param_group(self._adamw_group(param_group))
            else:
                bad = [tuple(p.shape) for p in _as_list(param_group["params"]) if p.ndim < 2]
                if bad:
                    raise MuonlabError(
                        f"params: a group with algorithm='muon' must hold matrices, got shapes {bad}", field="params"
                    )
                super().add_param_group(param_group)
            return
        params = _as_list(param_group["params"])
        matrices = [p for p in params if p.ndim >= 2]
        others = [p for p in params if p.ndim < 2]
        if matrices or not others:
            super().add_param_group(dict(param_group, params=matrices, algorithm="muon"))
        if others:
            super().add_param_group(self._adamw_group(dict(param_group, params=others)))

    def _adamw_group(self, group: dict[str, Any]) -> dict[str, Any]:
        group = dict(group, algorithm="adamw")
        adamw_lr = group.get("adamw_lr", self.defaults["adamw_lr"])
        adamw_wd = group.get("adamw_weight_decay", self.defaults["adamw_weight_decay"])
        group["lr"] = adamw_lr if adamw_lr is not None else group.get("lr", self.defaults["lr"])
        if adamw_wd is not None:
            group["weight_decay"] = adamw_wd
        return group

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # checkpoints from older versions
            group.setdefault("algorithm", "muon")
            group.setdefault("momentum_form", "sum")
            group.setdefault("beta", 0.0)

    def _validate_hyperparameters(self, h: dict[str, Any]) -> None:
        _validate_muon_hyperparameters(h)


    def _apply(self) -> None:
        """Two phases, so that a step is all or nothing even when finite gradients overflow:
        first the new momentum buffers and orth(D) of every Muon parameter (nothing is
        changed; an SVD failure or a non-finite result raises :class:`NonFiniteUpdateError`),
        then the Muon updates and the AdamW part (elementwise, cannot raise)."""
        plans = {
            gi: self._plan_muon(gi, group)
            for gi, group in enumerate(self.param_groups)
            if group["algorithm"] != "adamw"
        }
        self._check_plans(plans)
        for gi, group in enumerate(self.param_groups):
            if gi in plans:
                self._commit_muon(group, plans[gi])
            else:
                self._adamw_step(group)

    def _plan_muon(self, gi: int, group: dict[str, Any]) -> list[tuple[int, Tensor, Tensor | None, Tensor]]:
        """(position, parameter, new momentum buffer, orth(D)) per parameter with a gradient."""
        table = updates.coefficient_table(group["method"], group["coefficients"], group["ns_steps"])
        plan = []
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            buf = self.state.get(p, {}).get("momentum_buffer")
            try:
                (new_buf,), (update,) = updates.muon_directions(
                    [p.grad], [buf], momentum=group["momentum"], nesterov=group["nesterov"],
                    momentum_form=group["momentum_form"], method=group["method"], table=table,
                    ns_dtype=group["ns_dtype"], beta=group["beta"], eps=group["eps"],
                )
            except torch.linalg.LinAlgError as error:
                raise NonFiniteUpdateError(
                    f"params: {_where(gi, i, p)}: the update could not be computed ({str(error).splitlines()[0]}); "
                    "the step was not taken and nothing was changed", gi, i
                ) from None
            plan.append((i, p, new_buf, update))
        return plan

    @staticmethod
    def _check_plans(plans: dict[int, list[tuple[int, Tensor, Tensor | None, Tensor]]]) -> None:
        """Raise before any change if a new buffer or update is not finite (one sync per device)."""
        tensors = [t for plan in plans.values() for _, _, b, u in plan for t in (b, u) if t is not None]
        if _all_finite(tensors):
            return
        for gi, plan in plans.items():
            for i, p, new_buf, update in plan:
                finite = bool(torch.isfinite(update).all()) and (new_buf is None or bool(torch.isfinite(new_buf).all()))
                if not finite:
                    raise NonFiniteUpdateError(
                        f"params: {_where(gi, i, p)}: the update is not finite although the gradient is "
                        "(the momentum buffer overflowed?); the step was not taken and nothing was changed", gi, i
                    )

    def _commit_muon(self, group: dict[str, Any], plan: list[tuple[int, Tensor, Tensor | None, Tensor]]) -> None:
        for _, p, new_buf, update in plan:
            if new_buf is not None:
                state = self.state[p]
                if "momentum_buffer" in state:
                    state["momentum_buffer"].copy_(new_buf)
                else:
                    state["momentum_buffer"] = new_buf
            updates.apply_muon_update_(
                p, update, lr=group["lr"], weight_decay=group["weight_decay"],
                scale=updates.scale_factor(updates.as_matrix(p).shape, group["adjust_lr"]),
            )

    def _adamw_step(self, group: dict[str, Any]) -> None:
        params, grads = self._with_grads(group)
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
        updates.adamw(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["step"] for s in states],
            lr=group["lr"],
            betas=group["adamw_betas"],
            eps=group["adamw_eps"],
            weight_decay=group["weight_decay"],
        )


def _validate_muon_hyperparameters(h: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad hyper-parameter of a Muon group."""
    for name in ("lr", "weight_decay", "beta"):
        _check_nonneg(name, h[name])
    _check_unit("momentum", h["momentum"])
    for name in ("eps", "adamw_eps"):
        _check_positive(name, h[name])
    for name in ("adamw_lr", "adamw_weight_decay"):
        if h[name] is not None:
            _check_nonneg(name, h[name])
    _check_choice("method", h["method"], METHODS)
    _check_choice("adjust_lr", h["adjust_lr"], ADJUST_LR)
    _check_choice("momentum_form", h["momentum_form"], MOMENTUM_FORMS)
    if h["nesterov"] and h["momentum"] == 0.0:
        raise MuonlabError("nesterov: requires momentum > 0", field="nesterov")
    if h["ns_dtype"] is not None and h["ns_dtype"] not in (
        torch.bfloat16, torch.float16, torch.float32, torch.float64
    ):
        raise MuonlabError(
            f"ns_dtype: {h['ns_dtype']} is not supported; allowed: bfloat16, float16, float32, float64",
            field="ns_dtype",
        )
    betas = h["adamw_betas"]
    if (
        not isinstance(betas, (tuple, list))
        or len(betas) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas)
    ):
        raise MuonlabError(f"adamw_betas: must be two numbers in [0, 1), got {betas!r}", field="adamw_betas")
    # Validates the coefficient table / step count, with a clear message.
    resolve_coefficients(h["coefficients"], h["ns_steps"])


def _as_groups(params) -> list[dict[str, Any]]:
    """Normalize ``params`` (tensors or group dicts) to a list of group dicts."""
    if isinstance(params, Tensor):
        params = [params]
    items = list(params)
    if items and isinstance(items[0], dict):
        return [dict(g) for g in items]
    return [{"params": items}] if items else []


def _as_list(params) -> list[Tensor]:
    if isinstance(params, Tensor):
        return [params]
    return list(params)


class SpecGD(Muon):
    r"""Spectral gradient descent: :math:`W \leftarrow W - \eta\,\mathrm{msign}(\nabla f)` (exact SVD).

    Bernstein & Newhouse (2024); the "simplified Muon" of seeds 000–003.  With
    ``beta > 0`` the direction is :math:`T_\beta(\nabla f) = \nabla f(\nabla f^\top
    \nabla f + \beta I)^{-1/2}` (seed 000, SpecGD with β-regularized
    orthogonalization).  Momentum and the AdamW fallback work as in :class:`Muon`.
    """

    def __init__(self, params, lr: float, beta: float = 0.0, momentum: float = 0.0, **kwargs: Any) -> None:
        for key in ("method", "coefficients", "ns_steps"):
            if key in kwargs:
                raise MuonlabError(f"{key}: SpecGD always uses the exact SVD; use Muon to choose a method", field=key)
        _check_nonneg("beta", beta)
        method = "beta" if beta > 0.0 else "svd"
        super().__init__(params, lr=lr, momentum=momentum, method=method, beta=beta, **kwargs)


class SignGD(_GroupwiseOptimizer):
    r"""Sign gradient descent: :math:`W \leftarrow (1-\eta\lambda)W - \eta\,\mathrm{sign}(D)`.

    D is the gradient, or with ``momentum > 0`` the buffer M ← μM + G (signum,
    Bernstein et al. 2018).  SignGD is Adam with both moment averages switched off
    (β1 = β2 = 0, ε = 0); seed 001 (Ma et al. 2601.13474, Theorems 2 and 4) proves
    its iteration count depends on κ on hard instances.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
        self._validate_hyperparameters(defaults)
        super().__init__(params, defaults)

    def _validate_hyperparameters(self, h: dict[str, Any]) -> None:
        _check_nonneg("lr", h["lr"])
        _check_unit("momentum", h["momentum"])
        _check_nonneg("weight_decay", h["weight_decay"])

    def _step_group(self, group: dict[str, Any]) -> None:
        params, grads = self._with_grads(group)
        momentum = group["momentum"]
        updates.sgd(
            params,
            grads,
            [self._momentum_buffer(p, momentum) for p in params],
            lr=group["lr"],
            momentum=momentum,
            weight_decay=group["weight_decay"],
            sign=True,
        )


class ScaledGD(_GroupwiseOptimizer):
    r"""Scaled gradient descent for factorized problems (Tong, Ma & Chi 2021).

    Each param group holds one factorization:

    * ``[X]`` with X of shape (n, r), the symmetric product XXᵀ:
      :math:`X \leftarrow X - \eta\,\nabla_X f\,(X^\top X + \delta I)^{-1}`;
    * ``[A, B]`` with A (m, r) and B (r, n), the product AB:
      :math:`A \leftarrow A - \eta\,\nabla_A f\,(BB^\top + \delta I)^{-1}`,
      :math:`B \leftarrow B - \eta\,(A^\top A + \delta I)^{-1}\nabla_B f`.

    Both preconditioners use the factors *before* the step.  A factorization whose
    product is written ``L Rᵀ`` is passed as ``[L, R.T]``-shaped parameters, i.e.
    store R transposed.  ``damping`` δ = 0 is the published method; a small δ keeps
    the solve defined from a rank-deficient initialization.
    """

    def __init__(self, params, lr: float, damping: float = 0.0) -> None:
        defaults = dict(lr=lr, damping=damping)
        self._validate_hyperparameters(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            shapes = [tuple(p.shape) for p in group["params"]]
            if len(shapes) not in (1, 2) or any(len(s) != 2 for s in shapes):
                raise MuonlabError(
                    f"params: each ScaledGD group must hold [X] or [A, B] matrices, got shapes {shapes}", field="params"
                )
            if len(shapes) == 2 and shapes[0][1] != shapes[1][0]:
                raise MuonlabError(
                    f"params: A {shapes[0]} and B {shapes[1]} do not form a product A @ B", field="params"
                )

    def _validate_hyperparameters(self, h: dict[str, Any]) -> None:
        _check_nonneg("lr", h["lr"])
        _check_nonneg("damping", h["damping"])

    def _step_group(self, group: dict[str, Any]) -> None:
        params = group["params"]
        if any(p.grad is None for p in params):
            return  # a factorization is updated jointly or not at all
        updates.scaledgd(params, [p.grad for p in params], lr=group["lr"], damping=group["damping"])


def torch_compatible_muon(params, **overrides: Any) -> Muon:
    """A :class:`Muon` configured exactly like ``torch.optim.Muon``'s defaults.

    lr 1e-3, weight decay 0.1, momentum 0.95 (EMA form, Nesterov), Keller
    coefficients × 5 steps in bfloat16, eps 1e-7, ``adjust_lr="original"``.  On 2-D
    parameters it reproduces ``torch.optim.Muon`` step for step (bit for bit on CPU;
    see ``tests/test_torch_compat.py``).  Unlike ``torch.optim.Muon``, non-matrix
    parameters are routed to the AdamW fallback instead of raising.  Keyword
    arguments override any setting.
    """
    settings: dict[str, Any] = dict(
        lr=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        method="newton_schulz",
        coefficients="keller",
        ns_steps=5,
        ns_dtype=torch.bfloat16,
        eps=1e-7,
        adjust_lr="original",
        momentum_form="ema",
    )
    settings.update(overrides)
    return Muon(params, **settings)
