"""The ``generative-classifier`` filter of the post-sample stage: it applies the real-vs-noise network
(``generators.generative_classifier``, seed 001 ch. 5.4) that a VAE or tabular VAE trained with
itself; a sample it judges to be noise is rejected and redrawn, and the rejections are counted like
every other filter's."""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..generators.generative_classifier import GenerativeClassifier


class GenerativeClassifierJudge:
    """The ``generative-classifier`` filter of the stage: the model's own real-vs-noise network,
    trained with it (VAE and tabular VAE with ``generative_classifier=true``). It judges the
    generated data itself (pixels, or rows in the model's input encoding), not Lite0 features,
    so it also filters table rows."""

    name = "generative-classifier"
    score_name = "p_real"
    needs_features = False

    def __init__(self, network: GenerativeClassifier, encode: Callable[[Any], np.ndarray],
                 threshold: Optional[float] = None):
        self.network, self.encode = network, encode
        self.threshold = float(network.threshold if threshold is None else threshold)

    def judge(self, data: Any, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, P(real) per sample)."""
        if len(labels) == 0:
            return np.zeros(0, bool), np.zeros(0)
        p_real = self.network.real_probability(self.encode(data))
        return p_real >= self.threshold, p_real
