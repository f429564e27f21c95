"""Training workspace: train an image classifier on your own labelled images (the Train page and
``python -m medai_core image train-user``), and get a user model folder that the Imaging page and the CLI use
at once.

A set goes ``load_image_set`` (a ZIP in memory or a server folder; one folder per class; optional manifest with
groups) -> ``split_set`` (70/15/15, groups kept together) -> ``train_user_model`` (frozen or partly fine-tuned
pretrained backbone, linear head, validation-chosen epoch, temperature) -> ``TrainResult.files`` (the folder),
``save_folder`` / ``zip_folder``. ``QUEUE`` runs jobs in the background, one at a time per server.
"""
from __future__ import annotations

from medai_core.workspaces.training.data import (
    ImageSet,
    SetAside,
    count_images,
    load_image_set,
    split_set,
)
from medai_core.workspaces.training.evaluate import (
    Evaluation,
    evaluate,
    fit_temperature,
)
from medai_core.workspaces.training.export import models_home, save_folder, zip_folder
from medai_core.workspaces.training.figures import (
    confusion_figure,
    curves_figure,
    reliability_figure,
)
from medai_core.workspaces.training.fit import estimate_seconds, train_user_model
from medai_core.workspaces.training.jobs import (
    QUEUE,
    JobStatus,
    TrainingQueue,
    duration,
)
from medai_core.workspaces.training.roots import allowed_folder, data_roots
from medai_core.workspaces.training.settings import (
    AUGMENTS,
    FINE_TUNE,
    OPTIMIZERS,
    SIZES,
    Event,
    TrainResult,
    TrainSettings,
    backbone_choices,
    describe,
)

__all__ = ["AUGMENTS", "FINE_TUNE", "OPTIMIZERS", "QUEUE", "SIZES", "Evaluation", "Event", "ImageSet", "JobStatus",
           "SetAside", "TrainResult", "TrainSettings", "TrainingQueue", "allowed_folder", "backbone_choices",
           "confusion_figure", "count_images", "curves_figure", "data_roots", "describe", "duration", "estimate_seconds",
           "evaluate", "fit_temperature", "load_image_set", "models_home", "register_trained", "reliability_figure",
           "save_folder", "split_set", "train_user_model", "zip_folder"]


def register_trained(folder: str) -> str:
    """Register a saved model folder (loaded and probed now) so the Imaging page lists it; returns its name."""
    from medai_core.models.user import register_folder

    return register_folder(folder, load=True)
