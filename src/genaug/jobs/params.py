"""What each job type takes, validated before a job is queued (errors name the field).

Shape checks are pydantic models; ``check_params`` adds what needs the store: the dataset
and model exist, the kind is registered and trains on this kind of data, its config
validates, the name is free, the sample options match the kind's schemas, and the sizes are
within the service's limits (steps, the networks' parameter count, images per request). A job
that passes is unlikely to fail for a reason the person could have been told at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..evaluate.request import EvaluationRequest
from ..store.registry import validate_name

_NAME = dict(min_length=1, max_length=64)
BYTES_PER_TRAINED_PARAMETER = 16  # fp32 weights, gradients and Adam's two moments


class NameTakenError(ValueError):
    """The new model's name is taken (HTTP 409)."""


@dataclass(frozen=True)
class SubmitLimits:
    """The sizes one job may ask for (the service's settings)."""

    max_generate_n: int = 10_000
    max_train_steps: int = 200_000
    max_model_parameters: int = 300_000_000
    # The only folder whose subfolders a job may name as a pretrained model (dafusion's model_path);
    # None: jobs may not name one (the server's GENAUG_SD_MODEL, when set, is still the default).
    models_dir: Optional[Path] = None


def confine_model_path(config: dict[str, Any], models_dir: Optional[Path], field: str) -> dict[str, Any]:
    """A job's config with its ``model_path`` (a kind that reads pretrained weights from disk) checked
    against the service's models folder: a job names a subfolder of it, never a server path, and
    the answer never says what exists elsewhere. Returns the config with the path resolved."""
    name = config.get("model_path")
    if name is None:
        return config
    if models_dir is None:
        raise ValueError(f"{field}.model_path: this service offers no pretrained models (its administrator sets "
                         f"GENAUG_MODELS_DIR); leave model_path empty to use the server's default model, if any")
    text = str(name)
    if not text or text.startswith(("/", "~", "\\")) or any(part in ("", ".", "..") for part in text.split("/")):
        raise ValueError(f"{field}.model_path: name a model of the service's models folder (e.g. "
                         f"'stable-diffusion-v1-5'), not a path")
    root = Path(models_dir).resolve()
    resolved = (root / text).resolve()
    if root not in resolved.parents or not resolved.is_dir():
        raise ValueError(f"{field}.model_path: the service has no model {text!r}")
    return {**config, "model_path": str(resolved)}


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
    quality_samples: Optional[int] = Field(None, ge=0, le=256, description="samples per class of the quality card "
                                           "made after training (0 = none; default: the server's setting, 32)")

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
    filters: Optional[list[str]] = Field(
        None, max_length=4, description="post-sample filters: 'confidence:0.6', 'near-copy' (images), "
                                        "'generative-classifier' (models trained with it); null: the model's own "
                                        "generative classifier when it has one, [] no filter")
    quality: bool = Field(True, description="write quality.json (the generated images' quality card)")

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        from ..filters import parse_filters

        return None if value is None else [str(spec) for spec in parse_filters(value)]

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


def check_config_size(kind: str, config: dict[str, Any], image_shape, class_names: list[str], limits: SubmitLimits,
                      field: str = "params.config") -> None:
    """Refuse a config beyond the service's limits: any training ``steps`` field over
    ``max_train_steps``, or networks with more than ``max_model_parameters`` parameters (the
    kind's own count, built on the meta device; with the memory that training would need)."""
    from .. import api

    for name, value in config.items():
        if (name == "steps" or name.endswith("_steps")) and not name.startswith("sample") and \
                isinstance(value, int) and value > limits.max_train_steps:
            raise ValueError(f"{field}.{name}: {value:,} steps is over this service's limit of "
                             f"{limits.max_train_steps:,} per training")
    if image_shape is None:
        return
    count = api.get_generator_class(kind)(config).parameter_count(tuple(image_shape), list(class_names))
    if count is not None and count > limits.max_model_parameters:
        gigabytes = count * BYTES_PER_TRAINED_PARAMETER / 1e9
        raise ValueError(f"{field}: these networks would have {count:,} parameters (about {gigabytes:,.1f} GB to "
                         f"train), over this service's limit of {limits.max_model_parameters:,}; use fewer or "
                         "narrower layers")


def check_params(job_type: str, params: dict[str, Any], home, *, limits: SubmitLimits = SubmitLimits(),
                 max_generate_n: Optional[int] = None) -> dict[str, Any]:
    """Validate a job's params against the store; return them normalised (defaults filled in).

    Raises ``ValueError`` naming the field (``params.dataset: no stored dataset 'x'``),
    ``NameTakenError`` when a train job's model name is taken, or ``LookupError`` when a
    named model or dataset does not exist.
    """
    from .. import api
    from ..store.datasets import dataset_dir, stored_dataset_shape
    from ..store.registry import READY, TRAINING, Registry

    if max_generate_n is not None:
        limits = SubmitLimits(max_generate_n, limits.max_train_steps, limits.max_model_parameters, limits.models_dir)
    max_generate_n = limits.max_generate_n
    typed = parse_params(job_type, params)
    if job_type in ("train", "evaluate") and not dataset_dir(typed.dataset, home).is_dir():
        raise LookupError(f"params.dataset: no stored dataset {typed.dataset!r} (upload it with POST /api/datasets)")
    if job_type == "train":
        try:
            validated = api.validate_config(typed.kind, typed.config)
        except (KeyError, ValueError) as error:
            raise ValueError(f"params.config: {_message(error)}") from None
        data_kind, image_shape, class_names = stored_dataset_shape(typed.dataset, home)
        _check_data_kind(typed.kind, data_kind, "params.kind", typed.dataset)
        check_config_size(typed.kind, validated.model_dump(mode="json"), image_shape, class_names, limits)
        if "model_path" in type(validated).model_fields:
            validated = validated.model_copy(update=confine_model_path(
                validated.model_dump(mode="json"), limits.models_dir, "params.config"))
        with Registry.open(home) as registry:
            existing = registry.find(typed.name)
        if existing is not None and existing.name == typed.name:
            if existing.status == READY and not typed.replace:
                raise NameTakenError(f"params.name: a ready model named {typed.name!r} exists already (pick another "
                                     "name, or send replace: true to train it again)")
            if existing.status == TRAINING:
                raise NameTakenError(f"params.name: model {typed.name!r} is being trained right now (wait for it "
                                     "or cancel its job)")
        if typed.parent:
            with Registry.open(home) as registry:
                row = registry.find(typed.parent)
            if row is None or row.status != READY:
                raise LookupError(f"params.parent: no ready model {typed.parent!r}")
            if row.kind != typed.kind:
                raise ValueError(f"params.parent: {typed.parent} is a '{row.kind}' model, not '{typed.kind}'")
        from ..presets import with_progress_grids

        # A person watching a training sees it learn: sample grids during it unless the config says.
        config = validated.model_dump(mode="json")
        if "sample_every" not in typed.config:
            config = with_progress_grids(typed.kind, {k: v for k, v in config.items() if k != "sample_every"})
        typed.config = config
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
            raise ValueError(f"params: {total:,} images asked for; this service makes at most {max_generate_n:,} "
                             "per request (ask for fewer, or in several requests)")
        if total == 0 and typed.balance:
            raise ValueError("params.balance: the classes are balanced already (each has as many training images "
                             "as the largest), so balancing adds nothing; ask for a number per class instead")
        if total == 0:
            raise ValueError("params: that asks for 0 images")
        try:
            api.get_generator_class(row.kind).validate_sample_options(typed.options)
        except ValueError as error:
            raise ValueError(f"params.{error}") from None
        from ..filters import needs_reference, uses_generative_classifier

        if typed.filters and uses_generative_classifier(typed.filters) \
                and (row.config or {}).get("generative_classifier") is not True:
            raise ValueError(f"params.filters: model {typed.model} was trained without the generative classifier "
                             "(generative_classifier off, or a kind that has none), so it has none to apply")

        if typed.filters and needs_reference(typed.filters):
            from ..filters import REFERENCE_FILE

            with Registry.open(home) as registry:
                stored = (registry.artifact_path(row) / REFERENCE_FILE).is_file()
            if not stored:
                raise ValueError(f"params.filters: model {typed.model} stored no reference of its training images "
                                 "(it makes table rows, was trained with the quality card off, or before genaug "
                                 "kept one), so there is nothing to filter against")
    else:
        data_kind, image_shape, class_names = stored_dataset_shape(typed.dataset, home)
        for index, spec in enumerate(typed.generators):
            try:
                validated = api.validate_config(spec.kind, spec.config)
            except (KeyError, ValueError) as error:
                raise ValueError(f"params.generators[{index}]: {_message(error)}") from None
            _check_data_kind(spec.kind, data_kind, f"params.generators[{index}].kind", typed.dataset)
            check_config_size(spec.kind, validated.model_dump(mode="json"), image_shape, class_names, limits,
                              field=f"params.generators[{index}].config")
            if "model_path" in type(validated).model_fields:
                spec.config = confine_model_path(dict(spec.config), limits.models_dir,
                                                 f"params.generators[{index}].config")
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


def _check_data_kind(kind: str, data_kind: str, field: str, dataset: str) -> None:
    from .. import api

    trains_on = api.get_generator_class(kind).data_kind
    if trains_on != data_kind:
        raise ValueError(f"{field}: '{kind}' trains on {'tables' if trains_on == 'table' else 'images'}, and "
                         f"dataset {dataset!r} holds {'a table' if data_kind == 'table' else 'images'}")


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    else:
        text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    # "config: Value error, x" under "params.config: " says "config" twice and pydantic's prefix once.
    return text.removeprefix("config: ").replace("Value error, ", "")
