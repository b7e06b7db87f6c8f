"""Post-sample filters (DESIGN.md's filter stage).

- ``stage``: the stage that composes filters, redraws rejected samples and counts; filters are
  named by spec (``confidence:0.6``, ``near-copy``).
- ``confidence``: a linear classifier on the real training images' Lite0 features must name the
  sample's class (seed 002's outlook; the GAN Quality Index's filter).
- ``near_copy``: the memorisation test of ``genaug.quality`` rejects copies of training images.
- the real images' features the filters compare with: ``genaug.quality.reference`` (stored with a model).
- ``generative_classifier``: seed 001's real-vs-noise network, trained with a VAE or tabular VAE
  (the model keeps it) and applied by the stage as the ``generative-classifier`` filter.
"""
from .generative_classifier import GenerativeClassifierJudge
from ..quality.reference import REFERENCE_FILE, REFERENCE_PER_CLASS, FilterReference
from .stage import (DESCRIPTIONS, FEATURE_FILTERS, FILTER_KINDS, FILTERS_VERSION, MAX_ROUNDS, FilterSpec, FilterStage,
                    default_filters, needs_reference, parse_filter, parse_filters, redraw_seed,
                    uses_generative_classifier)

__all__ = ["DESCRIPTIONS", "FEATURE_FILTERS", "FILTER_KINDS", "FILTERS_VERSION", "MAX_ROUNDS", "REFERENCE_FILE",
           "REFERENCE_PER_CLASS", "FilterReference", "FilterSpec", "FilterStage",
           "GenerativeClassifierJudge", "default_filters", "needs_reference", "parse_filter", "parse_filters",
           "redraw_seed", "uses_generative_classifier"]
