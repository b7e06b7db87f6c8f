"""Tabular VAE of seed 001 (PROBEN1, ch. 5 and 6.3): one VAE per class ("Multi-VAE") or one for all rows.

How a table becomes a vector and back (``TableEncoding``):

- *continuous* columns (numeric with more than two distinct values) are standardised with the
  training mean / std; the decoder emits them linearly and the loss is squared error. Decoded
  values are clipped to the training range (PROBEN1 inputs live in [0, 1]; a VAE must not invent
  a negative age), and integer columns are rounded back to integers.
- *discrete* columns (object / string / category / bool, and numeric columns with at most two
  distinct values, e.g. PROBEN1's many 0/1 flags) are one-hot encoded; the decoder emits one
  softmax per column and the loss is its cross-entropy. Decoded values are therefore always
  one of the values seen in training -- a binary column decodes to exactly {0, 1}.
- every column keeps its dtype (and a category column its categories).

The loss per row is the sum over columns (one squared error or one cross-entropy each) plus
``beta`` times the KL term; with ``beta_normalise`` the weight is ``beta * d / N`` (eq. 5.3)
where N is the number of feature columns -- each column contributes one reconstruction term,
which is what the seed's table 6.2 used (card: 2/15 = 0.133, thyroid: 2/21 = 0.095).

Architecture (table 5.1, "PROBEN1 Multi-VAE"): Linear 512-256-128-64 encoder, mu / log-variance
Linear(d), decoder 64-128-256-512-width, each hidden layer followed by a normalisation and
LeakyReLU. BatchNorm (the seed's choice) needs batches of several rows: with ``norm="auto"`` a
VAE trained on fewer than ``BATCHNORM_MIN_ROWS`` rows (a few-shot class) uses LayerNorm instead,
which normalises each row on its own and behaves the same in training and sampling.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import pydantic
import torch
from pydantic import Field
from torch import nn

from ..data.datasets import LabelledTable
from .generative_classifier import GenerativeClassifier
from ..progress import ProgressCallback
from ..training import CHECKPOINT_DIR, Trainer, TrainingConfig, TrainingResult, latest_checkpoint
from .base import Samples, options_from_config, register, seeded_torch, tensors_under
from .groups import ALL_CLASSES, GroupedGenerator, class_group, group_class
from .latent_sampling import SamplerName, sample_latents

# Below this many training rows a VAE uses LayerNorm under norm="auto": BatchNorm statistics
# of batches of 2-8 rows are noise, and a batch of 1 is an error in training mode.
BATCHNORM_MIN_ROWS = 32
# A numeric column with at most this many distinct values is treated as discrete.
MAX_DISCRETE_NUMERIC_VALUES = 2
# Networks below this many parameters train on one intra-op thread (see ``few_threads``).
SMALL_NETWORK_PARAMETERS = 2_000_000
SAMPLE_OPTIONS = ("sampler", "alpha", "k", "noise", "discrete_decoding")
# Config fields that do not change how a VAE trains: a checkpoint stays valid when only they differ.
_NOT_TRAINING_FIELDS = {*SAMPLE_OPTIONS, "generative_classifier", "gc_sigma", "gc_steps", "steps",
                        "checkpoint_every", "sample_every", "max_seconds"}
_DECODE_CHUNK = 8192


# --------------------------------------------------------------------------- config
class TabularVAEConfig(TrainingConfig):
    """Settings of the tabular VAE; ``sample`` may override the sampling fields per call.

    Training settings (EMA, checkpoints, time budget, mixed precision): see ``TrainingConfig``;
    they apply to each VAE. ``ema_decay`` stays 0 by default: the seed's results (and the
    committed PROBEN1 numbers) sample from the trained weights themselves.
    """

    mode: Literal["per_class", "single"] = Field(
        "per_class", description="per_class: one VAE per class; "
                                 "single: one VAE on all rows, a sample takes its source row's class")
    mix_data: float = Field(
        0.0, ge=0.0, le=1.0,
        description="per_class only: add this many rows of other classes, as a fraction of the "
                    "class's own row count, to each class's VAE (seed 001 'Mix Data' uses 0.2)")
    latent_dim: int = Field(2, ge=1, le=512, description="dimension d of the latent space")
    hidden: list[int] = Field(
        [512, 256, 128, 64],  # pydantic copies mutable defaults per instance
        description="encoder layer widths; the decoder mirrors them (table 5.1: 512-256-128-64)")
    beta: float = Field(1.0, ge=0.0, description="weight of the KL term")
    beta_normalise: bool = Field(
        False, description="use beta * latent_dim / number_of_columns as KL weight, so one beta suits every table width")
    norm: Literal["auto", "batch", "layer", "none"] = Field(
        "auto", description=f"normalisation after each hidden layer; auto: BatchNorm, or LayerNorm "
                            f"for a VAE with fewer than {BATCHNORM_MIN_ROWS} training rows")
    steps: int = Field(6000, ge=1, description="training steps of each VAE")
    batch_size: int = Field(64, ge=1, description="rows per step (capped at the VAE's row count)")
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate")
    seed: int = Field(0, description="seed of weight init, batching, mix-in rows and training noise")
    sampler: Optional[SamplerName] = Field(
        None, description="how new rows are drawn; empty: 'prior' for per_class, "
                          "'noise' for single ('prior' gives no class in single mode)")
    alpha: float = Field(0.5, ge=0.0, description="noise std (noise) or step (inter-/extrapolation)")
    k: int = Field(5, ge=1, description="neighbours to pick an inter-/extrapolation partner from")
    noise: float = Field(0.2, ge=0.0, description="extra noise std of the '+noise' samplers")
    generative_classifier: bool = Field(
        False, description="train the generative-classifier filter (real rows vs uniform and Gaussian "
                           "noise, seed 001 ch. 5.4) and reject samples it judges to be noise")
    gc_sigma: float = Field(0.3, gt=0.0, description="std of the Gaussian noise rows around the sample mean "
                                                     "(in standardised units): the filter's sensitivity")
    gc_steps: int = Field(600, ge=1, description="training steps of the filter network")
    discrete_decoding: Literal["sample", "argmax"] = Field(
        "sample", description="discrete columns: draw from the decoder's softmax (keeps rare values) "
                              "or take its most likely value")

    @pydantic.field_validator("hidden")
    @classmethod
    def _hidden_positive(cls, hidden: list[int]) -> list[int]:
        if not hidden or any(width < 1 for width in hidden):
            raise ValueError("hidden must list at least one layer width, every width >= 1")
        return hidden

    @pydantic.model_validator(mode="after")
    def _mode_fits(self) -> "TabularVAEConfig":
        if self.mode == "single" and self.sampler == "prior":
            raise ValueError("sampler: 'prior' needs mode='per_class' (a prior sample of a single "
                             "VAE has no class); use noise, interpolation or extrapolation")
        if self.mode == "single" and self.mix_data > 0:
            raise ValueError("mix_data: only applies to mode='per_class'")
        return self

    def effective_sampler(self) -> str:
        """The sampler a ``sample`` call uses when none is given."""
        return self.sampler or ("prior" if self.mode == "per_class" else "noise")


# --------------------------------------------------------------------------- encoding
@dataclass
class ColumnSpec:
    """How one column is encoded: its kind, original dtype and, if discrete, its values."""

    name: str
    kind: Literal["continuous", "discrete"]
    dtype: str
    values: Optional[list] = None  # discrete: the one-hot positions' values, in order
    categories: Optional[list] = None  # category dtype: all categories of the dtype
    ordered: bool = False
    integer: bool = False  # continuous integer column: round on decoding


def _plain(value: Any, column: str) -> Any:
    """A JSON-safe Python scalar for a column value (the encoding is saved as JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"column '{column}': value {value!r} of type {type(value).__name__} cannot be "
                    f"encoded; use numbers, strings or booleans")


class TableEncoding:
    """Column layout of the VAE input: standardised continuous columns, then one-hot blocks."""

    def __init__(self, columns: list[ColumnSpec], mean: np.ndarray, std: np.ndarray,
                 low: np.ndarray, high: np.ndarray):
        self.columns = columns
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.low, self.high = low.astype(np.float64), high.astype(np.float64)
        self.continuous = [c for c in columns if c.kind == "continuous"]
        self.discrete = [c for c in columns if c.kind == "discrete"]
        self.cardinalities = [len(c.values) for c in self.discrete]
        self.width = len(self.continuous) + sum(self.cardinalities)
        offsets = np.cumsum([len(self.continuous)] + self.cardinalities)[:-1]
        # Discrete columns grouped by cardinality so that the loss and the decoding take one
        # (rows, columns, cardinality) view per group instead of a Python loop per column.
        self.groups: list[tuple[int, np.ndarray, np.ndarray]] = []
        for card in sorted(set(self.cardinalities)):
            members = np.array([j for j, c in enumerate(self.cardinalities) if c == card])
            positions = (offsets[members][:, None] + np.arange(card)[None, :]).reshape(-1)
            self.groups.append((card, members, positions))
        self._groups_t = [(card, torch.from_numpy(m), torch.from_numpy(p)) for card, m, p in self.groups]

    # -- fitting and (de)serialising ----------------------------------------
    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "TableEncoding":
        """Decide each column's kind and learn its statistics from the training rows."""
        columns, stats = [], []
        for name in frame.columns:
            series = frame[name]
            if series.isna().any():
                raise ValueError(f"column '{name}': has missing values; impute or drop them first")
            spec = cls._column_spec(str(name), series)
            columns.append(spec)
            if spec.kind == "continuous":
                values = series.to_numpy(dtype=np.float64)
                std = values.std()
                stats.append((values.mean(), std if std > 0 else 1.0, values.min(), values.max()))
        arrays = [np.array(v, dtype=np.float64) for v in zip(*stats)] if stats else [np.zeros(0)] * 4
        return cls(columns, *arrays)

    @staticmethod
    def _column_spec(name: str, series: pd.Series) -> ColumnSpec:
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            observed = [v for v in dtype.categories if (series == v).any()]
            return ColumnSpec(name, "discrete", "category", [_plain(v, name) for v in observed],
                              [_plain(v, name) for v in dtype.categories], bool(dtype.ordered))
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            values = sorted({_plain(v, name) for v in series.unique()}, key=lambda v: (str(type(v)), v))
            return ColumnSpec(name, "discrete", str(dtype), values)
        distinct = np.unique(series.to_numpy())
        if len(distinct) <= MAX_DISCRETE_NUMERIC_VALUES:
            return ColumnSpec(name, "discrete", str(dtype), [_plain(v, name) for v in distinct])
        return ColumnSpec(name, "continuous", str(dtype),
                          integer=pd.api.types.is_integer_dtype(dtype))

    def to_json(self) -> list[dict]:
        """The column specs as JSON-safe dicts (statistics travel as tensors)."""
        return [dict(vars(c)) for c in self.columns]

    @classmethod
    def from_json(cls, specs: list[dict], tensors: dict[str, torch.Tensor]) -> "TableEncoding":
        """Rebuild from ``to_json`` output and the ``encoding.*`` tensors."""
        stats = [tensors[f"encoding.{k}"].double().numpy() for k in ("mean", "std", "low", "high")]
        return cls([ColumnSpec(**spec) for spec in specs], *stats)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The continuous columns' statistics as named tensors."""
        return {"encoding.mean": torch.from_numpy(self.mean.astype(np.float64)),
                "encoding.std": torch.from_numpy(self.std.astype(np.float64)),
                "encoding.low": torch.from_numpy(self.low), "encoding.high": torch.from_numpy(self.high)}

    # -- rows <-> vectors ----------------------------------------------------
    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(VAE input (rows, width) float32, discrete targets (rows, discrete columns) int64)."""
        n = len(frame)
        cont = np.stack([frame[c.name].to_numpy(dtype=np.float64) for c in self.continuous], 1) \
            if self.continuous else np.zeros((n, 0))
        cont = (cont - self.mean) / self.std
        targets = np.zeros((n, len(self.discrete)), dtype=np.int64)
        for j, spec in enumerate(self.discrete):
            index = {v: i for i, v in enumerate(spec.values)}
            column = frame[spec.name].tolist()
            try:
                targets[:, j] = [index[_plain(v, spec.name)] for v in column]
            except KeyError as err:
                raise ValueError(f"column '{spec.name}': value {err.args[0]!r} was not seen in training")
        onehot = [np.eye(card, dtype=np.float32)[targets[:, j]] for j, card in enumerate(self.cardinalities)]
        return np.concatenate([cont.astype(np.float32), *onehot], axis=1), targets

    def reconstruction_loss(self, output: torch.Tensor, x: torch.Tensor,
                            targets: torch.Tensor) -> torch.Tensor:
        """Per-row sum of squared errors (continuous) and cross-entropies (discrete), batch mean."""
        n_cont = len(self.continuous)
        loss = ((output[:, :n_cont] - x[:, :n_cont]) ** 2).sum(1)
        for card, members, positions in self._groups_t:
            logits = output[:, positions].view(len(output), len(members), card)
            picked = logits.log_softmax(-1).gather(-1, targets[:, members].unsqueeze(-1))
            loss = loss - picked.squeeze(-1).sum(1)
        return loss.mean()

    def decode(self, output: np.ndarray, rng: np.random.Generator, how: str) -> pd.DataFrame:
        """Decoder outputs -> a DataFrame with the training columns, dtypes and categories."""
        n, n_cont = len(output), len(self.continuous)
        cont = np.clip(output[:, :n_cont].astype(np.float64) * self.std + self.mean, self.low, self.high)
        chosen = np.zeros((n, len(self.discrete)), dtype=np.int64)
        for card, members, positions in self.groups:
            logits = output[:, positions].reshape(n, len(members), card)
            chosen[:, members] = _pick(logits, rng, how)
        data: dict[str, pd.Series] = {}
        cont_index = {c.name: i for i, c in enumerate(self.continuous)}
        disc_index = {c.name: j for j, c in enumerate(self.discrete)}
        for spec in self.columns:
            if spec.kind == "continuous":
                values = cont[:, cont_index[spec.name]]
                data[spec.name] = pd.Series(np.round(values) if spec.integer else values).astype(spec.dtype)
            else:
                values = [spec.values[i] for i in chosen[:, disc_index[spec.name]]]
                data[spec.name] = _discrete_series(values, spec)
        return pd.DataFrame(data, columns=[c.name for c in self.columns])


def _pick(logits: np.ndarray, rng: np.random.Generator, how: str) -> np.ndarray:
    """Index per (row, column) from softmax logits: the most likely one or a draw."""
    if how == "argmax":
        return logits.argmax(-1)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    cumulative = np.cumsum(probs / probs.sum(-1, keepdims=True), axis=-1)
    draws = rng.random(logits.shape[:-1] + (1,))
    return np.minimum((cumulative < draws).sum(-1), logits.shape[-1] - 1)


def _discrete_series(values: list, spec: ColumnSpec) -> pd.Series:
    if spec.dtype == "category":
        return pd.Series(pd.Categorical(values, categories=spec.categories, ordered=spec.ordered))
    return pd.Series(values, dtype=object).astype(spec.dtype)


# --------------------------------------------------------------------------- network
def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def _stack(sizes: list[int], norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), _norm_layer(norm, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class TabularVAENetwork(nn.Module):
    """Encoder width -> hidden -> (mu, logvar) in R^d; decoder d -> reversed hidden -> width."""

    def __init__(self, width: int, hidden: list[int], latent_dim: int, norm: str):
        super().__init__()
        self.encoder = _stack([width, *hidden], norm)
        self.mu = nn.Linear(hidden[-1], latent_dim)
        self.logvar = nn.Linear(hidden[-1], latent_dim)
        self.decoder = nn.Sequential(_stack([latent_dim, *reversed(hidden)], norm),
                                     nn.Linear(hidden[0], width))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x)."""
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output: standardised continuous values, then softmax logits."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(decoder output, mu, logvar) for ``x`` with the reparameterisation noise ``eps``."""
        mu, logvar = self.encode(x)
        return self.decode(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


@contextlib.contextmanager
def few_threads(module: nn.Module):
    """Train a small network on one intra-op thread, restoring the thread count afterwards.

    Matrices of a few hundred columns gain ~10% from a second thread on an idle machine, but
    on a busy one (shared CI cores, several workers) the threads spin-wait on each other and a
    step becomes 10-20x slower. The setting is process-wide while the block runs.
    """
    previous = torch.get_num_threads()
    small = sum(p.numel() for p in module.parameters()) < SMALL_NETWORK_PARAMETERS
    if small and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _choose_norm(requested: str, rows: int) -> str:
    if requested == "auto":
        return "batch" if rows >= BATCHNORM_MIN_ROWS else "layer"
    if requested == "batch" and rows < 2:
        raise ValueError("norm: 'batch' cannot train on a single row; use 'auto', 'layer' or 'none'")
    return requested


# --------------------------------------------------------------------------- generator
@register("tabular_vae")
class TabularVAE(GroupedGenerator):
    """Tabular VAE (seed 001): one VAE per class or one for all rows; four latent samplers."""

    Config = TabularVAEConfig
    SampleOptions = options_from_config("TabularVAESampleOptions", TabularVAEConfig,
                                        {name: name for name in SAMPLE_OPTIONS})
    roles = {"vae": "networks"}
    preselected = ("evaluate",)  # the generator to compare on a table
    data_kind = "table"
    summary = "VAE for table rows: one per class (PROBEN1 Multi-VAE) or one for all; mixed column types"
    description = ("For tables (rows of a CSV file), not images: learns each class's rows, numbers and "
                   "categories alike, and makes new rows.")
    keeps_training_data = "encodings"
    presets = {"quick": {"steps": 500}, "standard": {"steps": 2000},
               "best": {"steps": 6000, "generative_classifier": True}}

    def __init__(self, config=None, **overrides: Any):
        super().__init__(config, **overrides)
        self.encoding: Optional[TableEncoding] = None
        self.networks = nn.ModuleDict()  # group key ("all" or "class<i>") -> VAE
        self.latent_means: dict[str, np.ndarray] = {}
        self.latent_labels: dict[str, np.ndarray] = {}
        self.filter: Optional[GenerativeClassifier] = None

    def generative_classifier(self):
        """The real-vs-noise network trained with the model (``generative_classifier=true``); it
        judges rows in the VAE's own input encoding (standardised, one-hot)."""
        if self.filter is None:
            return None
        return self.filter, lambda frame: self.encoding.encode(frame)[0]

    @classmethod
    def tiny_config(cls) -> TabularVAEConfig:
        """Small network, few steps: fits in well under a second per VAE on a CPU."""
        return TabularVAEConfig(hidden=[16, 8], steps=30, batch_size=16, generative_classifier=True, gc_steps=20)

    @classmethod
    def tiny_variants(cls) -> dict[str, TabularVAEConfig]:
        """Both modes, tiny: one VAE per class (with the filter) and one VAE for all rows."""
        tiny = cls.tiny_config()
        return {"per_class": tiny, "single": cls.Config(**{**tiny.model_dump(), "mode": "single", "generative_classifier": False})}

    # -- fit -----------------------------------------------------------------
    def fit(self, data: LabelledTable, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None) -> "TabularVAE":
        """Train the VAE(s) on ``data`` (the training split).

        ``checkpoints``: the training's working folder (see ``genaug.training``): each VAE is
        one phase, ``tabular_vae-<key>``, with resumable checkpoints every ``checkpoint_every``
        steps, its ``history.jsonl`` and ``losses.png``. A re-run of the same fit resumes an
        interrupted VAE where its last checkpoint left off and loads the finished ones.
        """
        # A resumed VAE restores the torch RNG state of its checkpoint: keep the caller's.
        with seeded_torch(self.config.seed):
            return self._fit(data, progress, checkpoints)

    def _fit(self, data: LabelledTable, progress: Optional[ProgressCallback],
             checkpoints: Optional[Path]) -> "TabularVAE":
        self._check_data(data)
        cfg = self.config
        self.class_names = list(data.class_names)
        self.encoding = TableEncoding.fit(data.frame)
        x_all, t_all = self.encoding.encode(data.frame)
        beta = cfg.beta * cfg.latent_dim / len(self.encoding.columns) if cfg.beta_normalise else cfg.beta
        plan = self._training_plan(data)
        self.networks, self.latent_means, self.latent_labels = nn.ModuleDict(), {}, {}
        vae_meta: dict[str, dict] = {}
        results: dict[str, dict] = {}
        for number, (key, train_rows, own_rows) in enumerate(plan):
            norm = _choose_norm(cfg.norm, len(train_rows))
            network, result = self._train_one(x_all[train_rows], t_all[train_rows], norm, beta, key,
                                              checkpoints, progress, number * cfg.steps, cfg.steps * len(plan))
            self.networks[key] = network
            self.latent_means[key] = self._encode_means(network, x_all[own_rows])
            self.latent_labels[key] = data.labels[own_rows]
            vae_meta[key] = {"norm": norm, "rows": int(len(train_rows)),
                             "sources": [data.sources[i] for i in own_rows]}
            results[key] = result.summary()
        self.meta = {"columns": self.encoding.to_json(), "beta_effective": beta, "vaes": vae_meta,
                     "training": results}
        self.filter = None
        if cfg.generative_classifier:
            self.filter = GenerativeClassifier(sigma=cfg.gc_sigma, steps=cfg.gc_steps, seed=cfg.seed).fit(x_all)
            self.meta["filter_train_accuracy"] = self.filter.train_accuracy
        self.fitted = True
        return self

    def _training_plan(self, data: LabelledTable) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(key, rows the VAE trains on, rows whose latents seed the samplers) per VAE."""
        if self.config.mode == "single":
            every = np.arange(len(data))
            return [(ALL_CLASSES, every, every)]
        plan = []
        for label in range(len(self.class_names)):
            own = np.flatnonzero(data.labels == label)
            if len(own) == 0:
                continue  # a class without rows gets no VAE; sampling it raises a clear error
            others = np.flatnonzero(data.labels != label)
            n_mix = min(int(round(self.config.mix_data * len(own))), len(others))
            rng = np.random.default_rng([self.config.seed, label, 1])
            mixed = np.sort(rng.choice(others, size=n_mix, replace=False)) if n_mix else others[:0]
            plan.append((class_group(label), np.concatenate([own, mixed]), own))
        return plan

    def _vae_seed(self, key: str) -> int:
        return self.config.seed * 1_000_003 + (0 if key == ALL_CLASSES else 1 + group_class(key))

    def _train_one(self, x: np.ndarray, targets: np.ndarray, norm: str, beta: float, key: str,
                   checkpoints: Optional[Path], progress: Optional[ProgressCallback], offset: int,
                   total: int) -> tuple[TabularVAENetwork, TrainingResult]:
        """Adam on the beta-VAE loss for ``config.steps`` batches with the shared ``Trainer``;
        returns the network (on the CPU, in eval mode) and the training result."""
        cfg = self.config
        seed = self._vae_seed(key)
        with torch.random.fork_rng(devices=[]):  # weight init must not touch the caller's RNG
            torch.manual_seed(seed)
            network = TabularVAENetwork(self.encoding.width, cfg.hidden, cfg.latent_dim, norm)
        # The VAE's own generator draws the epoch orders and the reparameterisation noise; its
        # state and the epoch position travel in the checkpoints, so a resumed run goes on
        # exactly as an uninterrupted one would.
        generator = torch.Generator().manual_seed(seed)
        n, batch = len(x), min(cfg.batch_size, len(x))
        epoch = {"order": torch.randperm(n, generator=generator), "position": 0}
        phase = f"tabular_vae-{key}"
        tag = self._training_tag(x, targets, norm, beta)
        self._drop_stale_checkpoints(checkpoints, phase, tag)

        def get_state() -> dict:
            return {"tag": tag, "generator": generator.get_state(), "order": epoch["order"].clone(),
                    "position": epoch["position"]}

        def set_state(state: dict) -> None:
            generator.set_state(state["generator"])
            epoch.update(order=state["order"], position=int(state["position"]))

        # fused Adam: the same update rule in a quarter less time per step on a CPU
        optimiser = torch.optim.Adam(network.parameters(), lr=cfg.lr, fused=True)
        trainer = Trainer(cfg, phase=phase, modules={"vae": network}, optimisers={"vae": optimiser},
                          # The Trainer wants a numpy generator to checkpoint; nothing draws from it.
                          rng=np.random.default_rng(seed), work_dir=checkpoints, progress=progress,
                          ema=("vae",), progress_offset=offset, progress_total=total, stage="fit tabular_vae",
                          progress_every=max(1, cfg.steps // 50), extra_state=(get_state, set_state))
        model, optimiser = trainer.modules["vae"], trainer.optimisers["vae"]
        device = trainer.device
        x_t, t_t = torch.from_numpy(x).to(device), torch.from_numpy(targets).to(device)
        amp = cfg.mixed_precision != "no"

        def step(number: int) -> dict[str, torch.Tensor]:
            if epoch["position"] + batch > n:  # a new epoch: reshuffle so each row is seen equally often
                epoch["order"], epoch["position"] = torch.randperm(n, generator=generator), 0
            rows = epoch["order"][epoch["position"]:epoch["position"] + batch].to(device)
            epoch["position"] += batch
            xb = x_t[rows]
            eps = torch.randn((batch, cfg.latent_dim), generator=generator).to(device)
            with trainer.autocast() if amp else contextlib.nullcontext():
                output, mu, logvar = model(xb, eps)
            if amp:
                output, mu, logvar = output.float(), mu.float(), logvar.float()
            recon = self.encoding.reconstruction_loss(output, xb, t_t[rows])
            kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()
            loss = recon + beta * kl
            optimiser.zero_grad(set_to_none=True)
            trainer.backward(loss)
            optimiser.step()
            return {"loss": loss, "reconstruction": recon, "kl": kl}

        with few_threads(network):
            result = trainer.run(step)
        sampling = trainer.sampling_module("vae")
        if sampling is not network:  # EMA on: sample from the averaged weights
            network.load_state_dict(sampling.state_dict())
        return network.cpu().eval(), result

    def _training_tag(self, x: np.ndarray, targets: np.ndarray, norm: str, beta: float) -> str:
        """Identity of one VAE's training: its rows and every setting that changes how it trains."""
        settings = self.config.model_dump(mode="json", exclude=_NOT_TRAINING_FIELDS)
        digest = hashlib.sha256(json.dumps({"config": settings, "norm": norm, "beta": beta}, sort_keys=True).encode())
        for array in (x, targets):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    @staticmethod
    def _drop_stale_checkpoints(checkpoints: Optional[Path], phase: str, tag: str) -> None:
        """Delete a phase's checkpoints written for other rows or settings: that VAE trains afresh."""
        path = None if checkpoints is None else latest_checkpoint(Path(checkpoints) / phase)
        if path is None:
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        if (state.get("extra") or {}).get("tag") != tag:
            shutil.rmtree(Path(checkpoints) / phase / CHECKPOINT_DIR, ignore_errors=True)

    @staticmethod
    def _encode_means(network: TabularVAENetwork, x: np.ndarray) -> np.ndarray:
        with torch.no_grad(), few_threads(network):
            return network.encode(torch.from_numpy(x))[0].numpy()

    # -- sample --------------------------------------------------------------
    def _sample(self, counts: dict[int, int], seed: int, options) -> Samples:
        """Rows per class. Options ``sampler``, ``alpha``, ``k``, ``noise``, ``discrete_decoding``
        override the config for this call; each class draws from its own stream of ``seed``."""
        cfg = self.Config.model_validate({**self.config.model_dump(), **options.overrides()})
        sampler = cfg.effective_sampler()
        parts = []
        for label_index, count in counts.items():
            if count <= 0:
                continue
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(label_index,)))
            parts.append(self._sample_class(label_index, count, sampler, cfg, rng))
        if not parts:
            empty = self.encoding.decode(np.zeros((0, self.encoding.width), np.float32),
                                         np.random.default_rng(0), "argmax")
            return Samples(empty, np.zeros(0, dtype=np.int64), list(self.class_names), [])
        return Samples.concat(parts)

    def _sample_class(self, label_index: int, count: int, sampler: str, cfg: TabularVAEConfig,
                      rng: np.random.Generator) -> Samples:
        key, rows = self._vae_for(label_index)
        means = self.latent_means[key][rows]
        sources = [self.meta["vaes"][key]["sources"][i] for i in rows]
        z, source_index = sample_latents(sampler, count, means, rng, cfg.latent_dim,
                                         alpha=cfg.alpha, k=cfg.k, noise=cfg.noise)
        network = self.networks[key]
        with torch.no_grad(), few_threads(network):
            output = np.concatenate([network.decode(torch.from_numpy(z[i:i + _DECODE_CHUNK])).numpy()
                                     for i in range(0, count, _DECODE_CHUNK)])
        frame = self.encoding.decode(output, rng, cfg.discrete_decoding)
        provenance = [{"sampler": sampler, "alpha": cfg.alpha, "k": cfg.k, "noise": cfg.noise,
                       "source": sources[i] if i >= 0 else None, "mode": cfg.mode}
                      for i in source_index.tolist()]
        return Samples(frame, np.full(count, label_index, dtype=np.int64), list(self.class_names),
                       provenance)

    def _vae_for(self, label_index: int) -> tuple[str, np.ndarray]:
        """The VAE that generates ``label_index`` and which of its latent means belong to the class."""
        name = self.class_names[label_index]
        if self.config.mode == "single":
            rows = np.flatnonzero(self.latent_labels[ALL_CLASSES] == label_index)
            if len(rows) == 0:
                raise ValueError(f"label: class '{name}' had no training rows; nothing to sample from")
            return ALL_CLASSES, rows
        key = class_group(label_index)
        if key not in self.networks:
            raise ValueError(f"label: class '{name}' had no training rows, so it has no VAE")
        return key, np.arange(len(self.latent_means[key]))

    # -- persistence ---------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Network weights, latent means and labels of the training rows, encoding statistics."""
        tensors = {**self.encoding.tensors(), **self.grouped_state_tensors()}
        for key in self.networks:
            tensors[f"means.{key}"] = torch.from_numpy(np.ascontiguousarray(self.latent_means[key]))
            tensors[f"labels.{key}"] = torch.from_numpy(np.asarray(self.latent_labels[key], dtype=np.int64))
        if self.filter is not None:
            tensors.update({f"filter.{k}": v for k, v in self.filter.state_tensors().items()})
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the encoding and networks from ``state_tensors`` output and ``self.meta``."""
        self.encoding = TableEncoding.from_json(self.meta["columns"], tensors)
        self.load_grouped_state(tensors, lambda key: {"vae": TabularVAENetwork(
            self.encoding.width, self.config.hidden, self.config.latent_dim, self.meta["vaes"][key]["norm"])})
        self.latent_means, self.latent_labels = {}, {}
        for key in self.networks:
            self.latent_means[key] = tensors[f"means.{key}"].numpy()
            self.latent_labels[key] = tensors[f"labels.{key}"].numpy()
        filter_tensors = tensors_under(tensors, "filter.")
        self.filter = GenerativeClassifier.from_state(filter_tensors) if filter_tensors else None
