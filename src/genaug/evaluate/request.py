"""One evaluation request, as the CLI, the job worker and the web UI state it: a plain comparison,
``--quick``, ``--select`` or ``--model``.

Every front end builds an ``EvaluationRequest`` and calls ``genaug.api.evaluate_request`` (in the
API because ``--model`` reads the registry); the report, the recommendation sentences and the
warnings therefore read the same everywhere.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..data.datasets import LabelledData, LabelledImages
from .protocol import GeneratorSpec, Protocol, SampleVariant, default_arms
from .select import QUICK_TABLE_VAE, QUICK_VAE

# --quick: one answer in minutes on a 2-core CPU (measured in the README): n = 10, 3 seeds,
# real, real + classic and one small per-class VAE at 1:1, a short classifier budget.
QUICK_SHOTS = [10]
QUICK_SEEDS = [0, 1, 2]
# The CNN at 300 steps x 64 took 21 s per cell on flowers at 64 px, at 200 x 32 5 s; the small
# generators (QUICK_VAE, QUICK_TABLE_VAE) are shared with the quick search grid (select.py).
QUICK_CLASSIFIER_STEPS = 200
QUICK_CLASSIFIER_BATCH = 32


class GeneratorChoice(BaseModel):
    """A generator arm of a plain comparison: a kind and config overrides."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(..., min_length=1, max_length=40)
    config: dict[str, Any] = Field(default_factory=dict)
    label: Optional[str] = Field(None, max_length=80)


class EvaluationRequest(BaseModel):
    """What to evaluate. ``model``, ``select`` and ``generators`` are three ways to say which
    synthetic data to try: a stored model's samples, an automatic search, or named kinds."""

    model_config = ConfigDict(extra="forbid")
    generators: list[GeneratorChoice] = Field(default_factory=list, max_length=8,
                                              description="kinds to compare (default: one VAE)")
    shots: Optional[list[Optional[int]]] = Field(None, min_length=1, max_length=10,
                                                 description="n per class; null = the whole training split")
    seeds: Optional[list[int]] = Field(None, min_length=1, max_length=10)
    per_class: Optional[int] = Field(None, ge=1, le=10_000, description="synthetic images per class (default 1:1)")
    classifier: Optional[str] = Field(None, max_length=200,
                                      description="cnn, lite0-linear, lite0-finetune, supcon; mlp, gbm (tables); module:function")
    classifier_steps: Optional[int] = Field(None, ge=1, le=20_000)
    model: Optional[str] = Field(None, max_length=128, description="a stored model: does its data help?")
    quick: bool = Field(False, description="a first answer in minutes: n = 10, 3 seeds, one small generator")
    select: bool = Field(False, description="search generator kinds x options x share on validation folds "
                                            "of the training split, then score the choice once on the test split")
    select_kinds: Optional[list[str]] = Field(None, max_length=8, description="restrict the search to these kinds")
    search_seeds: Optional[list[int]] = Field(None, min_length=1, max_length=20,
                                              description="with select: the search's seeds (default: seeds); more "
                                                          "resolve smaller gains at small n, at their cost")
    validation_size: Optional[int] = Field(None, ge=4, le=100_000,
                                           description="with select: examples in the validation pool, drawn "
                                                       "from the training split with its class mix "
                                                       "(default 2000, at most half of each class)")

    @field_validator("seeds", "search_seeds")
    @classmethod
    def _distinct_seeds(cls, seeds):
        if seeds is not None and (len(set(seeds)) != len(seeds) or min(seeds) < 0):
            raise ValueError("seeds must be distinct integers >= 0")
        return seeds

    @field_validator("shots")
    @classmethod
    def _positive_shots(cls, shots):
        if shots is not None and any(s is not None and s < 1 for s in shots):
            raise ValueError("every shot must be >= 1 (or null for the whole training split)")
        return shots

    @model_validator(mode="after")
    def _one_source(self):
        chosen = [name for name, on in (("model", self.model is not None), ("select", self.select),
                                        ("generators", bool(self.generators))) if on]
        if len(chosen) > 1:
            raise ValueError(f"{' and '.join(chosen)}: choose one way to name the synthetic data "
                             "(a stored model, the automatic search, or generator kinds)")
        for name in ("select_kinds", "validation_size", "search_seeds"):
            if getattr(self, name) is not None and not self.select:
                raise ValueError(f"{name}: only with select")
        return self

    def protocol(self, data: LabelledData) -> Protocol:
        """The runner's protocol: the request's values, else the quick or the default ones."""
        shots = self.shots or (QUICK_SHOTS if self.quick else [5, 10] if self.model is None else [None])
        seeds = self.seeds or QUICK_SEEDS
        steps = self.classifier_steps or (QUICK_CLASSIFIER_STEPS if self.quick else 1000)
        arms = [a for a in default_arms(data) if a != "synthetic"]
        if self.quick:
            arms = [a for a in arms if a in ("real", "real+classic", "real+synthetic")]
        batch = {"classifier_batch": QUICK_CLASSIFIER_BATCH} if self.quick else {}
        return Protocol(shots=shots, seeds=seeds, classifier=self.classifier, classifier_steps=steps, arms=arms,
                        **batch)

    def generator_specs(self, data: LabelledData) -> list[GeneratorSpec]:
        """The plain comparison's generator arms (quick: one small per-class VAE)."""
        variant = SampleVariant(per_class=self.per_class, ratio=None if self.per_class else 1.0)
        if not self.generators:
            images = isinstance(data, LabelledImages)
            kind = "vae" if images else "tabular_vae"
            config = (QUICK_VAE if images else QUICK_TABLE_VAE) if self.quick else {}
            return [GeneratorSpec(label=kind, kind=kind, config=dict(config), variants=[variant])]
        # A VAE trained with its generative classifier is sampled through it, as generate does by default.
        return [GeneratorSpec(label=g.label or g.kind, kind=g.kind, config=dict(g.config),
                              variants=[variant.model_copy(update={"filters": ["generative-classifier"]})
                                        if g.config.get("generative_classifier") is True else variant])
                for g in self.generators]
