"""Evaluation helpers shared by training scripts: calibration, bootstrap, confusion."""
from __future__ import annotations

import numpy as np
import torch


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE with equal-width bins (Guo et al. 2017)."""
    conf = probs.max(1)
    pred = probs.argmax(1)
    correct = (pred == labels).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            out.append({"lo": float(lo), "hi": float(hi), "n": int(m.sum()),
                        "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
    return out


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising NLL on held-out logits (LBFGS on log T)."""
    lg = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lg / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def bootstrap_ci(fn, *arrays: np.ndarray, n: int = 1000, seed: int = 0,
                 groups: np.ndarray | None = None) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``fn(*arrays)`` resampling rows, or whole ``groups`` (patients,
    near-duplicate sets: rows of one group are not independent) with replacement."""
    import warnings

    rng = np.random.default_rng(seed)
    if groups is None:
        m, members = len(arrays[0]), None
    else:
        uniq, inv = np.unique(groups, return_inverse=True)
        m, members = len(uniq), [np.flatnonzero(inv == g) for g in range(len(uniq))]
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples with one class make AUROC undefined: skipped
        for _ in range(n):
            idx = rng.integers(0, m, m)
            if members is not None:
                idx = np.concatenate([members[g] for g in idx])
            try:
                v = fn(*(a[idx] for a in arrays))
            except ValueError:
                continue
            if np.isfinite(v):
                vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def binary_ece(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Risk ECE: |observed rate - mean predicted risk| over equal-width bins of predicted risk
    (``reliability.reliability_curve``, the one binning the cards and the reliability panel share)."""
    from medai_core.trust.calibration import reliability_curve

    return reliability_curve(np.asarray(p, float), np.asarray(y, float).astype(int), n_bins).ece


def binary_reliability(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Per-bin mean predicted risk and observed rate (bins with no case are left out)."""
    from medai_core.trust.calibration import reliability_curve

    c = reliability_curve(np.asarray(p, float), np.asarray(y, float).astype(int), n_bins)
    return [{"lo": float(c.edges[i]), "hi": float(c.edges[i + 1]), "n": int(c.counts[i]),
             "mean_risk": float(c.mean_predicted[i]), "observed": float(c.observed[i])}
            for i in range(c.n_bins) if c.counts[i]]


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * logit + b)`` minimising NLL on held-out logits."""
    z = torch.tensor(np.asarray(logits), dtype=torch.float64)
    t = torch.tensor(np.asarray(y), dtype=torch.float64)
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=0.1, max_iter=500)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(ab[0] * z + ab[1], t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(ab[0].detach()), float(ab[1].detach())


def stratified_split(y: np.ndarray, seed: int, test: float = 0.15, val: float = 0.15) -> dict[str, np.ndarray]:
    """Row indices for train / validation / test, stratified by label, seeded (sorted within each split)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    trval, te = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    tr, va = train_test_split(trval, test_size=val / (1 - test), stratify=y[trval], random_state=seed)
    return {"train": np.sort(tr), "val": np.sort(va), "test": np.sort(te)}
