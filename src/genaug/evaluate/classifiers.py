"""Which classifier an evaluation trains, and one call that trains it on an arm's data.

Images: ``cnn`` (a small CNN from scratch, the seed theses' setting), ``lite0-linear`` (frozen
EfficientNet-Lite0 ImageNet features + a linear head), ``lite0-finetune`` (the whole network
fine-tuned), ``supcon`` (the CNN's body trained with SupCon on two augmented views, then a linear
probe: seed 000's protocol; read its ``real`` arm as seed 000's supcon-real and ``real+synthetic``
as supcon + synthetic positives (generated images join their class as extra views); ``cnn``'s
``real`` arm is the ce-real baseline. Every supcon arm sees augmented views -- the strong preset,
or the protocol's classic preset in ``+classic`` arms -- so under supcon ``real`` vs
``real+classic`` compares two augmentation presets, not augmentation against none). Tables: ``mlp``, ``gbm``. Both: a user classifier ``my_module:train_fn``.

The user hook: an importable callable ::

    def train_fn(x_train, y_train, *, n_classes, seed, steps, batch_size, is_synthetic, augment):
        ...
        return predict            # predict(x) -> (N,) integer class indices

``x_train``: images as uint8 (N, H, W, C) or table rows as a float32 matrix (categories one-hot
encoded); ``y_train``: int64 labels; ``is_synthetic``: a bool mask of the generated rows;
``augment``: for ``+classic`` arms a function uint8 images -> augmented uint8 images (apply it
per batch), else None; ``steps`` and ``batch_size``: the budget every arm gets (honour them so
arms stay comparable). A ``__version__`` attribute on the function or its module, and the
function's source, become part of every cell's identity: changing either recomputes cells.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import numpy as np

from .image_classifier import CLASSIFIER_VERSION, ClassifierBudget, TrainingLedger, module_classifier, \
    train_image_classifier

IMAGE_CLASSIFIERS = ("cnn", "lite0-linear", "lite0-finetune", "supcon")
TABLE_CLASSIFIERS = ("mlp", "gbm")
DEFAULT_CLASSIFIER = {"images": "cnn", "table": "mlp"}
PLAIN_NAMES = {
    "cnn": "a small CNN trained from scratch",
    "lite0-linear": "a linear head on frozen EfficientNet-Lite0 ImageNet features",
    "lite0-finetune": "EfficientNet-Lite0 (ImageNet) fine-tuned end to end",
    "supcon": "the small CNN trained with supervised contrastive learning, then a linear probe",
    "mlp": "an MLP (two hidden layers)",
    "gbm": "gradient-boosted trees (sklearn HistGradientBoosting)",
}
# Bump when the table training loops change (table_classifiers.py).
# 2: the MLP draws a full batch (with replacement) every step, whatever the arm's size.
TABLE_CLASSIFIER_VERSION = 2


@dataclass(frozen=True)
class ClassifierChoice:
    """A resolved classifier: its name, the data it takes, a version string, the user callable."""

    name: str
    data_kind: Literal["images", "table"]
    version: str
    user_fn: Optional[Callable[..., Callable[[np.ndarray], np.ndarray]]] = None
    # lite0-linear: the precision of its frozen features, decided once here and named in ``version``.
    precision: Optional[str] = None

    @property
    def description(self) -> str:
        """One plain line for reports."""
        return PLAIN_NAMES.get(self.name, f"your classifier {self.name}")


def resolve_classifier(name: Optional[str], data_kind: str) -> ClassifierChoice:
    """Check a ``--classifier`` value for this data kind (images or table) and resolve it.

    None gives the default (``cnn`` for images, ``mlp`` for tables). ``module:function``
    imports a user classifier; any error names what is wrong.
    """
    name = name or DEFAULT_CLASSIFIER[data_kind]
    if ":" in name:
        return ClassifierChoice(name, data_kind, *_user_classifier(name))  # type: ignore[arg-type]
    builtin = IMAGE_CLASSIFIERS if data_kind == "images" else TABLE_CLASSIFIERS
    if name not in builtin:
        other = TABLE_CLASSIFIERS if data_kind == "images" else IMAGE_CLASSIFIERS
        hint = f" ('{name}' is for {'tables' if data_kind == 'images' else 'images'})" if name in other else ""
        raise ValueError(f"classifier: '{name}' is not a classifier for {data_kind}{hint}; choose one of "
                         f"{', '.join(builtin)} or give your own as module:function")
    if name == "cnn":
        version = f"cnn-{CLASSIFIER_VERSION}"
    elif name == "supcon":
        from .contrastive import SUPCON_VERSION

        version = f"supcon-{SUPCON_VERSION}-cnn-{CLASSIFIER_VERSION}"
    elif name.startswith("lite0"):
        from ..pretrained.lite0 import LITE0_VERSION, classifier_precision

        version = f"{name}-{LITE0_VERSION}"
        if name == "lite0-linear":
            precision = classifier_precision()
            # Its frozen features' precision (fp32 cells, made before bf16, keep their identity).
            version += "" if precision == "fp32" else f"-{precision}"
            return ClassifierChoice(name, data_kind, version, precision=precision)  # type: ignore[arg-type]
    else:
        version = f"{name}-{TABLE_CLASSIFIER_VERSION}"
    return ClassifierChoice(name, data_kind, version)  # type: ignore[arg-type]


def _user_classifier(spec: str) -> tuple[str, Callable]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"classifier: '{spec}' must look like my_module:train_fn")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an ImportError, or the module's own failure on import
        raise ValueError(f"classifier: cannot import module '{module_name}' ({type(error).__name__}: {error})") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"classifier: module '{module_name}' has no attribute '{attr}'")
    if not callable(fn):
        raise ValueError(f"classifier: '{spec}' is not callable")
    declared = getattr(fn, "__version__", None) or getattr(module, "__version__", None) or ""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # built in C, or defined interactively: the name and version only
        source = ""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return f"user:{spec}:{declared}:{digest}", fn


def _numpy_augment(augment) -> Callable[[np.ndarray], np.ndarray]:
    """The kornia module as uint8 -> uint8 numpy, for user classifiers."""
    import torch

    from ..generators.images import images_to_tensor

    def apply(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = augment(images_to_tensor(images)).clamp(0, 1)
        return (out.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return apply


def train_and_predict(choice: ClassifierChoice, real_x: Any, real_y: np.ndarray, n_classes: int, test_x: Any, *,
                      seed: int, budget: ClassifierBudget, synthetic_x: Any = None,
                      synthetic_y: Optional[np.ndarray] = None, augment=None, real_fraction: Optional[float] = 0.5,
                      feature_cache: Optional[dict] = None) -> tuple[np.ndarray, dict]:
    """Train ``choice`` on one arm's images (uint8 NHWC) or encoded table rows; predict ``test_x``.

    Returns (test predictions, what the training loop consumed: steps, examples per step).
    """
    if choice.user_fn is not None:
        return _run_user(choice, real_x, real_y, n_classes, test_x, seed, budget, synthetic_x, synthetic_y,
                         augment)
    model, used = train_classifier(choice, real_x, real_y, n_classes, seed=seed, budget=budget,
                                   synthetic_x=synthetic_x, synthetic_y=synthetic_y, augment=augment,
                                   real_fraction=real_fraction, feature_cache=feature_cache)
    return np.asarray(model(test_x)), used


def train_classifier(choice: ClassifierChoice, real_x: Any, real_y: np.ndarray, n_classes: int, *, seed: int,
                     budget: ClassifierBudget, synthetic_x: Any = None, synthetic_y: Optional[np.ndarray] = None,
                     augment=None, real_fraction: Optional[float] = 0.5, feature_cache: Optional[dict] = None,
                     negatives: Optional[dict] = None) -> tuple[Callable[[Any], np.ndarray], dict]:
    """Train a built-in classifier on one arm's data: returns (the trained classifier -- call it to
    predict; an image classifier is a ``TrainedClassifier`` whose ``outputs`` give logits and
    features --, what the training loop consumed).

    ``negatives``: near-OOD negatives for ``supcon`` only -- ``{"images", "sources", "weight",
    "to"}`` (``contrastive.train_supcon_classifier``)."""
    if choice.user_fn is not None:
        raise ValueError(f"classifier {choice.name}: a user classifier is trained by train_and_predict")
    if negatives is not None and choice.name != "supcon":
        raise ValueError(f"classifier {choice.name}: near-OOD negatives need the supcon classifier")
    ledger = TrainingLedger()
    if choice.data_kind == "table":
        from .table_classifiers import train_table_classifier

        x = real_x if synthetic_x is None else np.concatenate([real_x, synthetic_x])
        y = real_y if synthetic_y is None else np.concatenate([real_y, synthetic_y])
        predict = train_table_classifier(choice.name, x, y, n_classes, seed, budget.steps, ledger=ledger)
        return predict, ledger.as_dict()
    common = dict(seed=seed, budget=budget, synthetic=synthetic_x, synthetic_labels=synthetic_y, augment=augment,
                  real_fraction=real_fraction, ledger=ledger)
    if choice.name == "cnn":
        return module_classifier(train_image_classifier(real_x, real_y, n_classes, **common)), ledger.as_dict()
    if choice.name == "supcon":
        from .contrastive import train_supcon_classifier

        extra = {} if negatives is None else dict(
            negatives=negatives["images"], negative_sources=negatives["sources"],
            negative_weight=negatives["weight"], negatives_for=negatives["to"])
        model = train_supcon_classifier(real_x, real_y, n_classes, **common, **extra)
        used = ledger.as_dict()
        if negatives is not None:
            used["negatives"] = len(negatives["images"])
        return module_classifier(model), used
    from .lite0 import train_lite0_finetune, train_lite0_linear

    if choice.name == "lite0-linear":
        return train_lite0_linear(real_x, real_y, n_classes, feature_cache=feature_cache, precision=choice.precision,
                                  **common), ledger.as_dict()
    return train_lite0_finetune(real_x, real_y, n_classes, feature_cache=feature_cache, **common), ledger.as_dict()


def _run_user(choice, real_x, real_y, n_classes, test_x, seed, budget, synthetic_x, synthetic_y, augment):
    if synthetic_x is None:
        x, y, mask = real_x, np.asarray(real_y), np.zeros(len(real_y), bool)
    else:
        x = np.concatenate([real_x, synthetic_x])
        y = np.concatenate([real_y, synthetic_y])
        mask = np.concatenate([np.zeros(len(real_y), bool), np.ones(len(synthetic_y), bool)])
    predict = choice.user_fn(x, y.astype(np.int64), n_classes=n_classes, seed=seed, steps=budget.steps,
                             batch_size=budget.batch_size, is_synthetic=mask,
                             augment=None if augment is None else _numpy_augment(augment))
    if not callable(predict):
        raise ValueError(f"classifier {choice.name}: must return a predict function, got {type(predict).__name__}")
    y_pred = np.asarray(predict(test_x))
    if y_pred.shape != (len(test_x),) or not np.issubdtype(y_pred.dtype, np.integer):
        raise ValueError(f"classifier {choice.name}: predict must return {len(test_x)} integer class indices, "
                         f"got an array of shape {y_pred.shape} and dtype {y_pred.dtype}")
    if len(y_pred) and (y_pred.min() < 0 or y_pred.max() >= n_classes):
        raise ValueError(f"classifier {choice.name}: predicted class indices must lie in [0, {n_classes - 1}]")
    # The user's loop is not instrumented: this is the budget it was given, marked as such.
    return y_pred, {"steps": budget.steps, "examples_per_step": budget.batch_size, "measured": False}
