"""ALPS against its authors' code, re-typed here in its own loop structure (mazumder-lab/ALPS
``alps.py``: ``ALPS_prune.ALPS_admm`` and ``cg_batch``, in float64 on the CPU)."""
import importlib

import numpy as np
import pytest
import torch

from sparsebench.core import registry


def alps():
    return importlib.import_module(registry.METHODS.get("alps")[0].__module__)


def authors_cg_batch(A, B, A_supp, X0, rtol=1e-4, atol=0.0, maxiter=10):
    n, m = B.shape
    X_k = X0
    R_k = B - A @ X_k
    R_k = R_k * A_supp
    Z_k = R_k
    P_k = torch.zeros_like(Z_k)
    P_k1, R_k1, R_k2, X_k1, Z_k1, Z_k2 = P_k, R_k, R_k, X0, Z_k, Z_k
    B_norm = torch.norm(B, dim=1)
    stopping_matrix = torch.max(rtol * B_norm, atol * torch.ones_like(B_norm))
    for k in range(1, maxiter + 1):
        Z_k = R_k
        if k == 1:
            P_k = Z_k
            R_k1 = R_k
            X_k1 = X_k
            Z_k1 = Z_k
        else:
            R_k2 = R_k1
            Z_k2 = Z_k1
            P_k1 = P_k
            R_k1 = R_k
            Z_k1 = Z_k
            X_k1 = X_k
            denominator = (R_k2 * Z_k2).sum(0)
            denominator[denominator == 0] = 1e-8
            beta = (R_k1 * Z_k1).sum(0) / denominator
            P_k = Z_k1 + beta.unsqueeze(0) * P_k1
        denominator = (P_k * (A @ P_k)).sum(0)
        denominator[denominator == 0] = 1e-8
        alpha = (R_k1 * Z_k1).sum(0) / denominator
        X_k = X_k1 + alpha.unsqueeze(0) * P_k
        R_k = R_k1 - alpha.unsqueeze(0) * (A @ P_k)
        R_k = R_k * A_supp
        residual_norm = torch.norm(A @ X_k - B, dim=1)
        if (residual_norm <= stopping_matrix).all():
            break
    return X_k


def authors_topk_zero(D, totp, num_cout, nm_n, nm_m, k_spar):
    if nm_n == 0:
        D = D.reshape(-1)
        _, loss_idx = torch.topk(-D ** 2, totp * num_cout - k_spar)
        D[loss_idx] = 0
        return D.reshape(totp, num_cout)
    new_dim = int(totp * num_cout / nm_m)
    D = D.t().reshape((new_dim, nm_m))
    _, loss_idx = torch.topk(-D ** 2, nm_m - nm_n, dim=1)
    D = D.scatter(src=torch.zeros((new_dim, nm_m - nm_n), dtype=D.dtype), dim=1, index=loss_idx)
    return D.reshape(num_cout, totp).t()


def authors_alps_admm(W, XtX, sp, nm_n=0, nm_m=0, rho=0.1, max_iter=300, update_iter=3, switch_iter=30):
    """``ALPS_admm`` (the diagnostics it prints left out; ``fix_supp`` is never set there)."""
    W, XtX = W.clone(), XtX.clone()
    damp1 = 0.01 * torch.mean(torch.diag(XtX)).item()
    diag = torch.arange(XtX.shape[0])
    XtX[diag, diag] += damp1
    X_norm = torch.diag(XtX).sqrt() + 1e-8
    XtX = XtX / X_norm
    XtX = (XtX.T / X_norm).T
    YtX = torch.matmul(W * X_norm, XtX)
    B = (W * X_norm).t().clone()
    B_orig = B.clone()
    V = torch.zeros_like(B)
    totp, num_cout = B.shape
    L, Q = torch.linalg.eigh(XtX.double())
    XTX_inv = Q @ ((1 / (L + rho)) * Q).T
    init_rho = False
    params = B.shape[0] * B.shape[1]
    k_spar = int(np.round((1 - sp) * params))
    if nm_n:
        k_spar = totp * num_cout * nm_n / nm_m
    D = authors_topk_zero(B.clone(), totp, num_cout, nm_n, nm_m, int(k_spar))
    D_suppp = (D == 0).to(torch.float)
    D_init = D.clone()
    for i_admm in range(max_iter):
        B = XTX_inv @ (YtX.T - V + rho * D)
        D = authors_topk_zero(((V + rho * B) / rho).clone(), totp, num_cout, nm_n, nm_m, int(k_spar))
        D_supp = (D == 0).to(torch.float)
        V = V + rho * (B - D)
        if (i_admm + 1) % update_iter == 0:
            supp_change = torch.sum((D_supp - D_suppp) ** 2)
            if supp_change / k_spar > 0.1:
                init_rho = True
                rho *= 1.3
            elif supp_change / k_spar > 0.005:
                init_rho = True
                rho *= 1.2
            elif supp_change > 0.5:
                if init_rho:
                    rho *= 1.1
                else:
                    rho /= 5
                    B = B_orig.clone()
                    D = D_init.clone()
                    V = torch.zeros_like(B)
            else:
                if init_rho:
                    break
                else:
                    rho /= 5
            D_suppp = D_supp.clone()
            if rho > 1e6:
                rho = 1e6
            XTX_inv = Q @ ((1 / (L + rho)) * Q).T
            if i_admm >= switch_iter and supp_change / k_spar < 0.0003:
                break
    B = authors_topk_zero(B.clone(), totp, num_cout, nm_n, nm_m, int(k_spar))
    B = authors_cg_batch(XtX, YtX.T, (B != 0).to(B.dtype), B)
    return (B.t() / X_norm).reshape(W.shape)


def layer(seed, inputs=96, rows=24, dead=9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(400, inputs, generator=g, dtype=torch.float64) @ torch.randn(inputs, inputs, generator=g,
                                                                                  dtype=torch.float64) * 0.3
    x[:, torch.randperm(inputs, generator=g)[:dead]] = 0.0  # inputs never nonzero
    return torch.randn(rows, inputs, generator=g, dtype=torch.float64), x.T @ x


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9])
def test_alps_equals_the_authors_admm_and_conjugate_gradient(sparsity):
    w, xtx = layer(0)
    options = registry.METHODS.get("alps")[0]()
    ours = alps().prune_layer(w, 2 * xtx / 400, sparsity, options)  # our H's scale: ALPS normalizes it away
    theirs = authors_alps_admm(w, xtx, sparsity)
    assert torch.equal(ours == 0, theirs == 0)  # the same mask
    assert torch.allclose(ours, theirs, rtol=1e-7, atol=1e-10)  # the same weights, to float rounding
    assert (ours == 0).sum() == w.numel() - round((1 - sparsity) * w.numel())
    # and better than keeping the largest weights as they are: the reconstruction error it minimizes
    magnitude = w * (w.abs() > w.abs().flatten().kthvalue(int(sparsity * w.numel())).values)
    error = lambda v: torch.trace((v - w) @ xtx @ (v - w).T)  # noqa: E731
    assert error(ours) < error(magnitude)


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_alps_nm_equals_the_authors_admm(n, m):
    w, xtx = layer(1)
    options = registry.METHODS.get(f"alps-{n}:{m}")[0](**registry.METHODS.get(f"alps-{n}:{m}")[1])
    ours = alps().prune_layer(w, xtx, 0.5, options)
    theirs = authors_alps_admm(w, xtx, 0.5, nm_n=n, nm_m=m)
    assert torch.equal(ours == 0, theirs == 0)
    assert torch.allclose(ours, theirs, rtol=1e-7, atol=1e-10)
    assert ((ours != 0).view(24, -1, m).sum(-1) == n).all()


def test_a_diagonal_h_given_as_its_diagonal_prunes_as_the_matrix_does():
    g = torch.Generator().manual_seed(2)
    counts = torch.randint(0, 30, (64,), generator=g).double()  # an embedding's token counts, some unseen
    w = torch.randn(8, 64, generator=g, dtype=torch.float64)
    options = registry.METHODS.get("alps")[0]()
    as_vector = alps().prune_layer(w, counts, 0.8, options)
    as_matrix = alps().prune_layer(w, torch.diag(counts), 0.8, options)
    assert torch.equal(as_vector == 0, as_matrix == 0)
    assert torch.allclose(as_vector, as_matrix, rtol=1e-9, atol=1e-12)
