"""The base of every generator's config: the bottom of the import graph, so that the training
helper (``training.TrainingConfig``) and the generators (``generators.base``) can both build on it."""
from __future__ import annotations

import pydantic


class GeneratorConfig(pydantic.BaseModel):
    """Base of every generator's config: typed, validated, unknown fields refused."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)
