"""What each job type takes, validated before a job is queued (errors name the field).

Shape checks are pydantic models; ``check_params`` adds what needs the store: the dataset
and model exist, the kind is registered, its config validates, the number of images is
within the service's limit. A job that passes is unlikely to fail for a reason the person
could have been told at once.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..evaluate.request import EvaluationRequest
from ..store.registry import validate_name

_NAME = dict(min_length=1, max_length=64)


class TrainParams(BaseModel):
    """A train job: which stored dataset, which kind, the new model's name and config."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(..., **_NAME, description="a stored dataset (uploaded with POST /api/datasets)")
    kind: str = Field(..., description="generator kind, see GET /api/kinds")
    name: str = Field(..., **_NAME, description="the new model's name")
    config: dict[str, Any] = Field(default_factory=dict, description="the kind's config fields; others default")
    augment: int = Field(0, ge=0, le=20, description="add this many classic-augmented copies of every image first")
    keep_data: bool = Field(False, description="keep the uploaded dataset after training (it is deleted otherwise)")
    parent: Optional[str] = Field(None, description="a ready model of the same kind to start from (transfer)")
    replace: bool = Field(False, description="replace a ready model of the same name")

    _names = field_validator("dataset", "name")(lambda value: validate_name(value))


class GenerateParams(BaseModel):
    """A generate job: which model, how many images, seed and the kind's sample options."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., **_NAME, description="a ready model")
    n_per_class: Optional[int] = Field(None, ge=0, description="images per class")
    counts: Optional[dict[str, int]] = Field(None, description="images per class name")
    balance: bool = Field(False, description="fill every class up to the largest training class")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    options: dict[str, Any] = Field(default_factory=dict, description="the kind's sample options")
    batch_size: int = Field(64, ge=1, le=1024)

    @model_validator(mode="after")
    def _one_way(self) -> "GenerateParams":
        given = [n for n, v in (("n_per_class", self.n_per_class), ("counts", self.counts)) if v is not None]
        given += ["balance"] if self.balance else []
        if len(given) != 1:
            raise ValueError("give exactly one of n_per_class, counts or balance"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class EvaluateParams(EvaluationRequest):
    """An evaluate job: a stored dataset and the evaluation request (``genaug.evaluate.request``:
    generator kinds, a stored ``model``, ``select`` or ``quick``; shots, seeds, classifier)."""

    dataset: str = Field(..., **_NAME)
    test_fraction: float = Field(0.2, gt=0, lt=1, description="test share when the dataset has no test split")

    _name = field_validator("dataset")(lambda value: validate_name(value))

    def request(self) -> EvaluationRequest:
        """The request without the job's own fields."""
        return EvaluationRequest(**self.model_dump(exclude={"dataset", "test_fraction"}))


PARAMS = {"train": TrainParams, "generate": GenerateParams, "evaluate": EvaluateParams}


def parse_params(job_type: str, params: dict[str, Any]) -> BaseModel:
    """The typed params of a job; ``ValidationError`` (fields under ``params``) when malformed."""
    if job_type not in PARAMS:
        raise ValueError(f"type: {job_type!r} is not one of {', '.join(PARAMS)}")
    return PARAMS[job_type].model_validate(params)


def check_params(job_type: str, params: dict[str, Any], home, *, max_generate_n: int) -> dict[str, Any]:
    """Validate a job's params against the store; return them normalised (defaults filled in).

    Raises ``ValueError`` naming the field (``params.dataset: no stored dataset 'x'``) or
    ``LookupError`` when a named model or dataset does not exist.
    """
    from .. import api
    from ..store.datasets import dataset_dir
    from ..store.registry import READY, Registry

    typed = parse_params(job_type, params)
    if job_type in ("train", "evaluate") and not dataset_dir(typed.dataset, home).is_dir():
        raise LookupError(f"params.dataset: no stored dataset {typed.dataset!r} (upload it with POST /api/datasets)")
    if job_type == "train":
        try:
            validated = api.validate_config(typed.kind, typed.config)
        except (KeyError, ValueError) as error:
            raise ValueError(f"params.config: {_message(error)}") from None
        if typed.parent:
            with Registry.open(home) as registry:
                row = registry.find(typed.parent)
            if row is None or row.status != READY:
                raise LookupError(f"params.parent: no ready model {typed.parent!r}")
            if row.kind != typed.kind:
                raise ValueError(f"params.parent: {typed.parent} is a '{row.kind}' model, not '{typed.kind}'")
        typed.config = validated.model_dump(mode="json")
    elif job_type == "generate":
        with Registry.open(home) as registry:
            row = registry.find(typed.model)
        if row is None or row.status != READY:
            raise LookupError(f"params.model: no ready model {typed.model!r}")
        try:
            plan = api.plan_counts(list(row.class_names), n_per_class=typed.n_per_class, counts=typed.counts,
                                   balance=typed.balance, reference_counts=(row.data_summary or {}).get("counts"))
        except ValueError as error:
            raise ValueError(f"params: {error}") from None
        total = sum(plan.values())
        if total > max_generate_n:
            raise ValueError(f"params: {total} images asked for; this service allows at most {max_generate_n} "
                             "per request (GENAUG_MAX_GENERATE_N)")
        if total == 0:
            raise ValueError("params: that asks for 0 images")
        allowed = api.get_generator_class(row.kind).sample_options()
        unknown = sorted(set(typed.options) - set(allowed))
        if unknown and allowed is not None:
            raise ValueError(f"params.options: unknown option {', '.join(map(repr, unknown))} for kind "
                             f"'{row.kind}'; it takes {', '.join(sorted(allowed)) or 'none'}")
    else:
        for index, spec in enumerate(typed.generators):
            try:
                api.validate_config(spec.kind, spec.config)
            except (KeyError, ValueError) as error:
                raise ValueError(f"params.generators[{index}]: {_message(error)}") from None
        if typed.model is not None:
            with Registry.open(home) as registry:
                row = registry.find(typed.model)
            if row is None or row.status != READY:
                raise LookupError(f"params.model: no ready model {typed.model!r}")
            from ..data import stratified_split
            from ..store.datasets import load_dataset

            # The checks the run would make, now: the same classes, and a test split the model never saw.
            data, test, _ = load_dataset(typed.dataset, home)
            if test is None:
                data, test = stratified_split(data, typed.test_fraction, seed=0)
            if list(row.class_names or []) != list(data.class_names):
                raise ValueError(f"params.model: {typed.model}'s classes {list(row.class_names or [])} differ "
                                 f"from dataset {typed.dataset}'s {list(data.class_names)}")
            try:
                api.check_no_overlap(typed.model, test, home)
            except ValueError as error:
                raise ValueError(f"params.model: {error}") from None
        if typed.classifier is not None:
            from ..evaluate.classifiers import IMAGE_CLASSIFIERS, TABLE_CLASSIFIERS

            # A user classifier (module:function) imports code by name: the library and CLI only,
            # never a name sent over HTTP.
            if typed.classifier not in IMAGE_CLASSIFIERS + TABLE_CLASSIFIERS:
                raise ValueError(f"params.classifier: '{typed.classifier}' is not one of "
                                 f"{', '.join(IMAGE_CLASSIFIERS + TABLE_CLASSIFIERS)} (your own module:function "
                                 "classifier runs with the library or the CLI, not through the service)")
    return typed.model_dump(mode="json")


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    else:
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    # "config: Value error, x" under "params.config: " says "config" twice and pydantic's prefix once.
    return text.removeprefix("config: ").replace("Value error, ", "")
