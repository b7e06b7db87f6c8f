"""Classifiers for table rows, used to measure whether synthetic rows help.

Honest-evaluation rule: every arm (real, synthetic, real + synthetic) trains the same
classifier with the same budget -- a fixed number of optimisation steps (MLP) or boosting
iterations (GBM) -- so only the training data differs between arms, never the effort.

``encode_tables`` turns real and synthetic tables into float matrices with the same columns;
``train_table_classifier`` trains on one and returns a predict function.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional as F

from ..data.datasets import LabelledTable
from ..generators.tabular import few_threads

ClassifierKind = Literal["mlp", "gbm"]
DEFAULT_BUDGETS: dict[str, int] = {"mlp": 2000, "gbm": 200}  # MLP steps / boosting iterations
MLP_HIDDEN = (256, 128)
MLP_BATCH = 64
MLP_LR = 1e-3
MLP_WEIGHT_DECAY = 1e-4
EMA_DECAY = 0.995  # ~200-step average of the weights: cuts the seed-to-seed noise of the last steps
GBM_MIN_SAMPLES_LEAF = 5  # fixed (not the sklearn 20) so few-shot arms can split at all
# OpenMP threads of the boosting: on busy shared cores they spin-wait on each other and a
# 50-iteration fit on thyroid took 80 s instead of 1 s. One thread; parallelise across runs.
GBM_THREADS = 1


# --------------------------------------------------------------------------- encoding
@dataclass
class _ColumnLayout:
    numeric: list[str]
    categorical: dict[str, list]  # column -> categories (one output column each)


def _frame(table: LabelledTable | pd.DataFrame) -> pd.DataFrame:
    return table.frame if isinstance(table, LabelledTable) else table


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype))


def _layout(frame: pd.DataFrame) -> _ColumnLayout:
    numeric, categorical = [], {}
    for name in frame.columns:
        series = frame[name]
        if not _is_categorical(series):
            numeric.append(name)
        elif isinstance(series.dtype, pd.CategoricalDtype):
            categorical[name] = list(series.dtype.categories)
        else:
            categorical[name] = sorted(series.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    return _ColumnLayout(numeric, categorical)


def _matrix(frame: pd.DataFrame, layout: _ColumnLayout, what: str) -> np.ndarray:
    missing = [c for c in [*layout.numeric, *layout.categorical] if c not in frame.columns]
    if missing:
        raise ValueError(f"encode_tables: {what} lacks the training column(s) {missing}")
    extra = [c for c in frame.columns if c not in layout.numeric and c not in layout.categorical]
    if extra:
        raise ValueError(f"encode_tables: {what} has column(s) {extra} that the training table lacks")
    blocks = [frame[layout.numeric].to_numpy(dtype=np.float32)] if layout.numeric else []
    for name, categories in layout.categorical.items():
        values = frame[name].to_numpy(dtype=object)
        # A value the training table never had gets an all-zero block: no column to put it in.
        blocks.append(np.stack([values == c for c in categories], 1).astype(np.float32)
                      if categories else np.zeros((len(frame), 0), np.float32))
    return np.concatenate(blocks, 1) if blocks else np.zeros((len(frame), 0), np.float32)


def encode_tables(train: LabelledTable | pd.DataFrame,
                  *others: LabelledTable | pd.DataFrame) -> list[np.ndarray]:
    """Float32 matrices ``[train, *others]`` with identical columns.

    Numeric and boolean columns pass through as floats; string / object / category columns are
    one-hot encoded with the categories of ``train`` (a category column: all of its dtype's
    categories). Pass the table the classifier trains on (e.g. real + synthetic) first. Every
    other table must have the same column names (any order).
    """
    layout = _layout(_frame(train))
    return [_matrix(_frame(train), layout, "the training table")] + \
        [_matrix(_frame(t), layout, f"table {i + 1}") for i, t in enumerate(others)]


# --------------------------------------------------------------------------- classifiers
class TableClassifier:
    """A trained classifier: ``clf(x)`` gives class indices, ``clf.predict_proba(x)`` probabilities."""

    def __init__(self, kind: str, n_classes: int, proba: Callable[[np.ndarray], np.ndarray]):
        self.kind, self.n_classes, self._proba = kind, n_classes, proba

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(rows, n_classes) class probabilities."""
        return self._proba(np.asarray(x, dtype=np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Predicted class index per row."""
        return self.predict_proba(x).argmax(1)


def train_table_classifier(kind: ClassifierKind, x_train: np.ndarray, y_train: np.ndarray,
                           n_classes: int, seed: int, budget: Optional[int] = None,
                           ledger=None) -> TableClassifier:
    """Train an ``mlp`` (torch) or ``gbm`` (sklearn histogram gradient boosting) on float rows.

    ``budget`` is the number of MLP steps or boosting iterations (``DEFAULT_BUDGETS`` when None);
    it does not depend on the number of rows, so arms of different sizes get the same effort:
    the MLP draws ``MLP_BATCH`` rows (with replacement) every step, whatever the arm's size; a
    boosting iteration fits one tree per class on all rows (trees have no batch), so there the
    rule is the same number of iterations. ``ledger`` (a ``TrainingLedger``) records each MLP
    step's batch. Deterministic for a given ``seed``.
    """
    x_train = np.asarray(x_train, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.int64)
    _check_training_set(x_train, y_train, n_classes)
    if kind not in DEFAULT_BUDGETS:
        raise ValueError(f"kind: '{kind}' is not one of {', '.join(DEFAULT_BUDGETS)}")
    budget = DEFAULT_BUDGETS[kind] if budget is None else int(budget)
    if budget < 1:
        raise ValueError(f"budget: must be >= 1, got {budget}")
    present = np.unique(y_train)
    if len(present) == 1:  # nothing to learn; both kinds would fail or waste the budget
        return TableClassifier(kind, n_classes, _constant(int(present[0]), n_classes))
    if kind == "mlp":
        return TableClassifier(kind, n_classes, _train_mlp(x_train, y_train, n_classes, seed, budget, ledger))
    return TableClassifier(kind, n_classes, _train_gbm(x_train, y_train, n_classes, seed, budget))


def _check_training_set(x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x_train: expected a non-empty (rows, features) matrix, got shape {x.shape}")
    if y.shape != (len(x),):
        raise ValueError(f"y_train: expected shape ({len(x)},), got {y.shape}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y_train: labels must lie in [0, {n_classes - 1}]")
    if not np.isfinite(x).all():
        raise ValueError("x_train: contains NaN or infinite values")


def _constant(label: int, n_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    def proba(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), n_classes), dtype=np.float32)
        out[:, label] = 1.0
        return out
    return proba


def _train_gbm(x, y, n_classes, seed, budget) -> Callable[[np.ndarray], np.ndarray]:
    # No early stopping: it would hold out rows and stop at a data-dependent iteration.
    model = HistGradientBoostingClassifier(max_iter=budget, learning_rate=0.1, early_stopping=False,
                                           min_samples_leaf=GBM_MIN_SAMPLES_LEAF, random_state=seed)
    with threadpool_limits(GBM_THREADS, user_api="openmp"):
        model.fit(x, y)

    def proba(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), n_classes), dtype=np.float32)
        with threadpool_limits(GBM_THREADS, user_api="openmp"):
            out[:, model.classes_] = model.predict_proba(rows)  # classes absent in training stay 0
        return out
    return proba


def _train_mlp(x, y, n_classes, seed, budget, ledger=None) -> Callable[[np.ndarray], np.ndarray]:
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-8, std, 1.0).astype(np.float32)  # constant columns: leave them at 0
    x_t = torch.from_numpy((x - mean) / std)
    y_t = torch.from_numpy(y)
    with torch.random.fork_rng(devices=[]):  # weight init must not touch the caller's RNG
        torch.manual_seed(seed)
        network = _mlp(x.shape[1], n_classes)
    ema = copy.deepcopy(network).requires_grad_(False)
    optimiser = torch.optim.AdamW(network.parameters(), lr=MLP_LR, weight_decay=MLP_WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed)
    batch = MLP_BATCH  # not min(MLP_BATCH, rows): a small arm gets as many rows per step as a large one
    network.train()
    with few_threads(network):
        for step in range(budget):
            rows = torch.randint(0, len(x), (batch,), generator=generator)
            loss = F.cross_entropy(network(x_t[rows]), y_t[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if ledger is not None:
                ledger.record(len(rows))
            # EMA warm-up (as in TF's ExponentialMovingAverage) so that short budgets average too.
            decay = min(EMA_DECAY, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(network.parameters()), 1.0 - decay)
    ema.eval()

    def proba(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad(), few_threads(ema):
            return ema(torch.from_numpy((rows - mean) / std).float()).softmax(1).numpy()
    return proba


def _mlp(width: int, n_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip((width, *MLP_HIDDEN[:-1]), MLP_HIDDEN):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(MLP_HIDDEN[-1], n_classes))
