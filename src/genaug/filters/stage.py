"""The post-sample filter stage: generated samples pass every chosen filter or are redrawn.

Filters are named by a short spec, ``name`` or ``name:threshold`` (``confidence:0.6``,
``near-copy``, ``near-copy:0.5``, ``generative-classifier``), and composed: a sample is kept
when every filter keeps it. ``confidence`` and ``near-copy`` judge images by their Lite0
features against a reference of real training images; ``generative-classifier`` is the
real-vs-noise network a VAE or tabular VAE trained with itself (seed 001 ch. 5.4), and judges
the data directly, so it filters table rows too.
Every filter judges every drawn sample, so the report counts each filter's rejections on its own
(an ablation reads them directly). Rejected samples are redrawn, at most ``MAX_ROUNDS`` rounds
per request; what is still missing then is reported as short, never filled with rejects.

Each kept sample's provenance gets ``filters[<name>] = {"verdict": "accepted", "<score>": value}``,
which ``genaug generate`` writes into ``manifest.jsonl``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .confidence import DEFAULT_CONFIDENCE, ConfidenceFilter
from .generative_classifier import GenerativeClassifierJudge
from .near_copy import NearCopyFilter
from ..quality.reference import FilterReference

# Bump when a filter's judgement changes: evaluation cells of filtered arms carry it.
FILTERS_VERSION = 1
FILTER_KINDS = {"confidence": ConfidenceFilter, "near-copy": NearCopyFilter,
                "generative-classifier": GenerativeClassifierJudge}
# The filters that compare Lite0 features with a reference of real images (the others judge the data).
FEATURE_FILTERS = frozenset(name for name, kind in FILTER_KINDS.items() if kind.needs_features)
MAX_ROUNDS = 10
# Each redraw round draws what is missing times this margin (plus one), so a modest rejection
# rate is made up in one round.
DRAW_MARGIN = 1.3

DESCRIPTIONS = {
    "confidence": f"a classifier trained on the real training images must name the sample's class with at "
                  f"least this probability (default {DEFAULT_CONFIDENCE})",
    "near-copy": "rejects samples far closer to one training image than to any other (copies of your data; "
                 "the threshold is the nearest/second-nearest distance ratio, default 1/3)",
    "generative-classifier": "the real-vs-noise network the model trained with itself (VAE and tabular VAE with "
                             "generative_classifier on) must judge the sample real with at least this probability "
                             "(default 0.5); also for table rows",
}


@dataclass(frozen=True)
class FilterSpec:
    """One filter and its threshold (None: the filter's default)."""

    name: str
    threshold: Optional[float] = None

    def __str__(self) -> str:
        return self.name if self.threshold is None else f"{self.name}:{self.threshold:g}"


def parse_filter(spec: str | Mapping[str, Any] | FilterSpec) -> FilterSpec:
    """``"confidence:0.6"``, ``"near-copy"`` or ``{"name": ..., "threshold": ...}`` -> ``FilterSpec``;
    a ValueError names what is wrong."""
    if isinstance(spec, FilterSpec):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"name", "threshold"}
        if unknown or "name" not in spec:
            raise ValueError(f"filter {dict(spec)!r}: expected {{'name': ..., 'threshold': ...}}")
        name, threshold = spec["name"], spec.get("threshold")
    elif isinstance(spec, str):
        name, _, raw = spec.strip().partition(":")
        threshold = None
        if raw:
            try:
                threshold = float(raw)
            except ValueError:
                raise ValueError(f"filter {spec!r}: the threshold after ':' must be a number, got {raw!r}") from None
    else:
        raise ValueError(f"filter {spec!r}: expected a text such as 'confidence:0.6' or 'near-copy'")
    if name not in FILTER_KINDS:
        raise ValueError(f"filter {name!r}: unknown; known filters: {', '.join(FILTER_KINDS)}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise ValueError(f"filter {name}: the threshold must be a number, got {threshold!r}")
        low_ok = threshold > 0 if name == "near-copy" else threshold >= 0
        if not (low_ok and threshold <= 1):
            bound = "(0, 1]" if name == "near-copy" else "[0, 1]"
            raise ValueError(f"filter {name}: the threshold must lie in {bound}, got {threshold}")
    return FilterSpec(str(name), None if threshold is None else float(threshold))


def redraw_seed(batch_seed: int, round_index: int) -> int:
    """The seed of a batch's ``round_index``-th draw: the batch's own seed first, then seeds derived
    from it (so a filtered run is as reproducible as an unfiltered one)."""
    if round_index == 0:
        return int(batch_seed)
    return int(np.random.SeedSequence([int(batch_seed), int(round_index)]).generate_state(1)[0])


def parse_filters(specs) -> list[FilterSpec]:
    """Several specs (None or empty: no filter); a filter named twice is refused."""
    parsed = [parse_filter(s) for s in (specs or [])]
    names = [s.name for s in parsed]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"filter {twice[0]!r} is given twice; give each filter once")
    return parsed


def needs_reference(specs) -> bool:
    """Whether any of these filters compares with real images' features (a ``FilterReference``)."""
    return any(spec.name in FEATURE_FILTERS for spec in parse_filters(specs))


def uses_generative_classifier(specs) -> bool:
    """Whether these filters include the model's own generative classifier."""
    return any(spec.name == "generative-classifier" for spec in parse_filters(specs))


def default_filters(generator) -> list[str]:
    """The filters a model applies when none are asked for: the generative classifier it was
    trained with (as before it became a stage filter), else none."""
    return ["generative-classifier"] if generator.generative_classifier() is not None else []


class FilterStage:
    """Judges generated samples with the chosen filters and keeps count (see the module).

    ``reference``: the real images' features (needed by ``confidence`` and ``near-copy``);
    ``generator``: the model that draws the samples (needed by ``generative-classifier``)."""

    def __init__(self, specs, reference: Optional[FilterReference], class_names: list[str], *, seed: int = 0,
                 max_rounds: int = MAX_ROUNDS, generator=None):
        self.specs = parse_filters(specs)
        if not self.specs:
            raise ValueError("filter stage: no filter given")
        if max_rounds < 1:
            raise ValueError(f"filter stage: max_rounds must be >= 1, got {max_rounds}")
        if reference is not None and reference.class_names:
            reference.check_classes(class_names)
        self.class_names = list(class_names)
        self.max_rounds = int(max_rounds)
        self.needs_features = any(spec.name in FEATURE_FILTERS for spec in self.specs)
        self.filters = []
        for spec in self.specs:
            kwargs = {} if spec.threshold is None else {"threshold": spec.threshold}
            if spec.name == "generative-classifier":
                trained = None if generator is None else generator.generative_classifier()
                if trained is None:
                    raise ValueError("filter generative-classifier: this model was trained without the generative "
                                     "classifier (train a vae or tabular_vae with generative_classifier=true)")
                self.filters.append(GenerativeClassifierJudge(*trained, **kwargs))
                continue
            if reference is None:
                raise ValueError(f"filter {spec.name}: needs the real training images' features to compare with "
                                 "(the model's stored reference, or the training images)")
            if spec.name == "confidence":
                kwargs["seed"] = seed
            self.filters.append(FILTER_KINDS[spec.name](reference, **kwargs))
        self.drawn = 0
        self.accepted = 0  # passed every filter and kept
        self.surplus = 0  # passed, but the request was already full (each round draws a margin)
        self.rejected = 0
        self.rejected_by = {spec.name: 0 for spec in self.specs}
        self.short: dict[str, int] = {}

    def judge(self, data, labels: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(keep mask, per sample ``{filter name: {"verdict", score}}``) for a batch's data (uint8
        NHWC images, or table rows for data-judging filters)."""
        from ..quality.features import image_features

        labels = np.asarray(labels, dtype=np.int64)
        features = None
        if self.needs_features:
            if not isinstance(data, np.ndarray):
                names = ", ".join(s.name for s in self.specs if s.name in FEATURE_FILTERS)
                raise ValueError(f"filter {names}: judges images; this model generates table rows "
                                 "(the generative-classifier filter judges rows)")
            features = image_features(data, "lite0")
        keep = np.ones(len(labels), bool)
        verdicts: list[dict[str, Any]] = [{} for _ in range(len(labels))]
        for spec, judge in zip(self.specs, self.filters):
            ok, score = judge.judge(features if judge.needs_features else data, labels)
            self.rejected_by[spec.name] += int((~ok).sum())
            keep &= ok
            for i in range(len(labels)):
                verdicts[i][spec.name] = {"verdict": "accepted" if ok[i] else "rejected",
                                          judge.score_name: round(float(score[i]), 4)}
        self.drawn += len(labels)
        self.rejected += int((~keep).sum())
        return keep, verdicts

    def draw(self, draw: Callable[[int, int], "Samples"], n: int, class_name: Optional[str] = None):  # noqa: F821
        """Call ``draw(count, round)`` until ``n`` samples pass (at most ``max_rounds`` rounds); returns
        the kept ``Samples`` (maybe fewer than ``n``: the shortfall is added to ``short``), or None
        when not one passed."""
        from ..generators.base import Samples

        kept, have = [], 0
        for round_index in range(self.max_rounds):
            missing = n - have
            if missing <= 0:
                break
            # The first round draws exactly what was asked, with the request's own seed: the same
            # samples an unfiltered request gets, so "with and without the filter" compare like for like.
            batch = draw(missing if round_index == 0 else int(missing * DRAW_MARGIN) + 1, round_index)
            keep, verdicts = self.judge(batch.data, batch.labels)
            index = np.flatnonzero(keep)[:missing]
            self.accepted += len(index)
            self.surplus += int(keep.sum()) - len(index)
            if len(index):
                provenance = [{**batch.provenance[i], "filters": {**batch.provenance[i].get("filters", {}),
                                                                  **verdicts[i]}} for i in index]
                data = batch.data.iloc[index].reset_index(drop=True) if hasattr(batch.data, "iloc") \
                    else batch.data[index]  # table rows or images
                kept.append(Samples(data, np.asarray(batch.labels)[index], list(batch.class_names),
                                    provenance, dict(batch.stats)))
                have += len(index)
        if have < n:
            key = class_name if class_name is not None else "all"
            self.short[key] = self.short.get(key, 0) + n - have
        return Samples.concat(kept) if kept else None

    def summary(self) -> dict[str, Any]:
        """What the stage did: filters, drawn = accepted + surplus + rejected, rejections by each filter
        (a sample two filters reject counts for both), and what is short per class."""
        return {"filters": [str(s) for s in self.specs], "drawn": self.drawn, "accepted": self.accepted,
                "surplus": self.surplus, "rejected": self.rejected, "rejected_by": dict(self.rejected_by),
                "rejection_rate": round(self.rejected / self.drawn, 4) if self.drawn else 0.0,
                "short": dict(self.short), "max_rounds": self.max_rounds}
