"""Both checks of the map on screen: the sanity check (cascading randomisation) and the faithfulness
curves as one ``TrustReport``, sharing one progress bar (``split_progress``). Each workspace's ``trust.py``
runs the two on its pipeline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
