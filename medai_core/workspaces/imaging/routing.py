"""The right model for each scan: every routed image model scores the scan, its own OOD guard says whether the
scan looks like its training images, and DICOM Modality / BodyPartExamined are hints.

Rule (``choose``):
1. Candidates are the image models whose spec has ``extra["routing"]`` (the default model of each kind of scan).
2. A model *accepts* the scan when its OOD score is at or under its threshold. Of the accepting models, the one
   the DICOM header points at wins; otherwise the one with the lowest score relative to its threshold.
   A model also rejects a DICOM whose header names an acquisition modality it was not trained on (a CT or an MR
   for either model): the feature-space guards alone let some CT and MR slices through (see the cards).
3. When no model accepts the scan it stays flagged (``ood: true``, greyed out). The prediction shown is then that
   of the model the header points at, or else the least-far model, and the reason says so.
Content decides over the header: a file labelled CR that the chest model rejects is not scored as a chest film.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from medai_core.errors import ModelError
from medai_core.io.scan import MetaItem, Scan
from medai_core.models.spec import MODELS, ModelSpec, get_spec
from medai_core.workspaces.imaging.pipeline import ImagePrediction


@dataclass(frozen=True)
class Candidate:
    name: str
    prediction: ImagePrediction
    hinted: bool  # the DICOM header points at this model
    ruled_out: bool = False  # the DICOM header names a modality this model does not read

    @property
    def distance(self) -> float:
        """OOD score relative to the model's threshold (<= 1: looks like its training images)."""
        p = self.prediction
        return p.ood_score / p.ood_threshold if p.ood_threshold > 0 else float("inf")


@dataclass(frozen=True)
class Route:
    """Which model scores this scan, and why."""

    model: str
    prediction: ImagePrediction
    reason: str
    candidates: tuple[Candidate, ...]
    forced: bool = False

    def to_json(self) -> dict[str, object]:
        return {"model": self.model, "forced": self.forced, "reason": self.reason,
                "candidates": {c.name: {"ood": c.prediction.ood, "ood_score": round(c.prediction.ood_score, 4),
                                        "ood_threshold": round(c.prediction.ood_threshold, 4), "hinted": c.hinted,
                                        "ruled_out_by_header": c.ruled_out}
                               for c in self.candidates}}


def routed_models() -> list[str]:
    """The image models the router chooses between (specs with ``extra['routing']``), in registry order."""
    return [n for n in MODELS.names(modality="image") if get_spec(n).extra.get("routing")]


def _meta(scan: Scan, keyword: str) -> str:
    for item in scan.metadata:
        if isinstance(item, MetaItem) and item.keyword == keyword:
            return str(item.value).strip().upper()
    return ""


def header_hints(scan: Scan) -> tuple[str, str]:
    """(Modality, BodyPartExamined) from the DICOM header, upper case; empty for plain images."""
    return (scan.modality or "").strip().upper(), _meta(scan, "BodyPartExamined")


def hinted(spec: ModelSpec, modality: str, body_part: str) -> bool:
    r = spec.extra.get("routing") or {}
    if body_part and body_part in r.get("body_parts", ()):
        return True
    return bool(modality) and modality in r.get("modalities", ()) and not (body_part and r.get("body_parts"))


def kind(name: str) -> str:
    """What the model reads, in words ("chest X-ray")."""
    return str(get_spec(name).extra.get("kind", name))


def describe(name: str) -> str:
    """"chest X-ray model (cxr_pneumonia)"; "user model (my_model)"."""
    k = kind(name)
    return f"{k} ({name})" if k.endswith(" model") else f"{k} model ({name})"


def looks_like(name: str) -> str:
    """What a scan should look like for the model: "chest X-ray"; "the training images of my_model"."""
    return f"the training images of {name}" if get_spec(name).extra.get("user_model") else kind(name)


# DICOM modalities that name an acquisition (PS3.3 C.7.3.1.1.1); a header naming one a model was not trained on
# rules that model out. OT (other), SC, SEG and the like say nothing about the acquisition: content decides.
ACQUISITION_MODALITIES = frozenset({"CR", "CT", "DX", "ES", "IO", "IVUS", "MG", "MR", "NM", "OCT", "OP", "PT", "PX",
                                    "RF", "RG", "US", "XA", "XC"})


def header_rules_out(spec: ModelSpec, modality: str) -> bool:
    """The header names an acquisition modality this model does not read (a CT for the chest film model)."""
    mods = (spec.extra.get("routing") or {}).get("modalities", ())
    return bool(mods) and modality in ACQUISITION_MODALITIES and modality not in mods


def _candidate(name: str, pred: ImagePrediction, modality: str, part: str) -> Candidate:
    spec = get_spec(name)
    if header_rules_out(spec, modality):
        pred = replace(pred, ood=True)  # whatever the features say: a CT is not a chest film
    return Candidate(name, pred, hinted(spec, modality, part), header_rules_out(spec, modality))


def choose(scan: Scan, predict_with: Callable[[str], ImagePrediction], names: Sequence[str] | None = None) -> Route:
    """Score the scan with every routed model (``predict_with(name)``) and pick one (see the module rule)."""
    names = list(names) if names is not None else routed_models()
    modality, part = header_hints(scan)
    cands_list, missing = [], []
    for n in names:
        try:
            cands_list.append(_candidate(n, predict_with(n), modality, part))
        except ModelError as err:  # weights missing or corrupt: route among the others, and say so
            missing.append(f"{n} unavailable ({err})")
    if not cands_list:
        raise ModelError("No image model is available to choose from: " + "; ".join(missing))
    cands = tuple(cands_list)
    header = " / ".join(x for x in (f"Modality {modality}" if modality else "", f"BodyPartExamined {part}" if part else "") if x)
    accepting = [c for c in cands if not c.prediction.ood]
    others = "; ".join([f"{describe(c.name)}: {c.distance:.2f} x its OOD threshold"
                        + (f", and the DICOM header says {modality}, which it does not read" if c.ruled_out else "")
                        for c in cands] + missing)
    if accepting:
        hint_ok = [c for c in accepting if c.hinted]
        best = min(hint_ok or accepting, key=lambda c: c.distance)
        why = f"the scan looks like its training images ({best.distance:.2f} x the OOD threshold)"
        if hint_ok:
            why += f" and the DICOM header ({header}) points to it"
        elif header:
            why += f"; the DICOM header ({header}) points to no model that accepts it"
        return Route(best.name, best.prediction, f"Chosen: {describe(best.name)}, because {why}. Scores: {others}.", cands)
    hint_any = [c for c in cands if c.hinted]
    best = min(hint_any or cands, key=lambda c: c.distance)
    why = (f"the DICOM header ({header}) points to it" if hint_any else "it is the least far from its training images")
    return Route(best.name, best.prediction,
                 f"No image model recognises this scan: every one flags it as out of distribution. Shown: "
                 f"{describe(best.name)}, because {why}; its answer is greyed out. Scores: {others}.", cands)


def forced(name: str, prediction: ImagePrediction, scan: Scan | None = None) -> Route:
    """The user (or ``--model``) chose the model. The header rule still applies: a CT scored by the chest model
    is flagged, whatever its features say."""
    modality = header_hints(scan)[0] if scan is not None else ""
    if header_rules_out(get_spec(name), modality):
        return Route(name, replace(prediction, ood=True),
                     f"Chosen by you: {describe(name)}. The DICOM header says {modality}, which it does not read.", (),
                     forced=True)
    return Route(name, prediction, f"Chosen by you: {describe(name)}.", (), forced=True)


def route_scan(scan: Scan, model_for: Callable[[str], object], frame: int = 0,
               names: Sequence[str] | None = None, *, keep_grid: bool = False) -> Route:
    """``choose`` with each model's own input and calibrated prediction; ``model_for(name)`` loads a model.
    ``keep_grid``: the predictions keep their feature grids (for Grad-CAM without a second pass)."""
    from medai_core.workspaces.imaging.pipeline import predict, prepare_input

    def predict_with(name: str) -> ImagePrediction:
        spec = get_spec(name)
        return predict(model_for(name), spec, prepare_input(scan, spec, frame), keep_grid=keep_grid)

    return choose(scan, predict_with, names)
