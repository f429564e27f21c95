"""Both checks of the map on screen, in one call: the sanity check (cascading randomisation) and the
faithfulness curves, with one progress bar. Each workspace's ``trust.py`` supplies the two runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from medai_core.explain.base import ProgressFn
from medai_core.trust.faithfulness import FaithfulnessCurves
from medai_core.trust.randomisation import CascadeResult

CASCADE_SHARE = 0.8  # of the progress bar: the cascade re-runs the explainer once per stage, the curves are cheap


def _r(v: float, nd: int = 6) -> float:
    return round(float(v), nd)


@dataclass(frozen=True)
class TrustReport:
    """Both checks of one shown map."""

    method: str
    target: str
    cascade: CascadeResult
    faithfulness: FaithfulnessCurves

    def summary(self) -> dict[str, Any]:
        """The headline numbers (the CLI's ``"sanity"`` object, without its file paths)."""
        f = self.faithfulness
        return {"verdict": self.cascade.verdict, "rank_correlation": _r(self.cascade.rank_correlation),
                "abs_rank_correlation": _r(self.cascade.abs_rank_correlation), "faithfulness": f.verdict,
                "deletion_auc": _r(f.deletion_auc), "deletion_auc_random": _r(f.deletion_auc_random),
                "insertion_auc": _r(f.insertion_auc), "insertion_auc_random": _r(f.insertion_auc_random)}

    def to_json(self, include_maps: bool = False) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "randomisation": self.cascade.to_json(include_maps),
                "faithfulness": self.faithfulness.to_json()}


def split_progress(progress: ProgressFn | None) -> tuple[ProgressFn | None, ProgressFn | None]:
    """Two progress callbacks, for the cascade (the first ``CASCADE_SHARE`` of the bar) and the curves."""
    if progress is None:
        return None, None
    return (lambda p: progress(CASCADE_SHARE * p)), (lambda p: progress(CASCADE_SHARE + (1 - CASCADE_SHARE) * p))


def run_checks(method: str, target: str, cascade: Callable[[ProgressFn | None], CascadeResult],
               curves: Callable[[ProgressFn | None], FaithfulnessCurves],
               progress: ProgressFn | None = None) -> TrustReport:
    """``cascade(progress)`` then ``curves(progress)``, sharing one progress bar, as a ``TrustReport``."""
    p1, p2 = split_progress(progress)
    c = cascade(p1)
    return TrustReport(method, target, c, curves(p2))
