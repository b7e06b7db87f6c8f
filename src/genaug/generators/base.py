"""The generator contract, the samples it returns, and the registry of generator kinds.

Every generator -- classic augmentation, VAE, tabular VAE, and later GANs and diffusion --
follows the same five calls (``fit``, ``sample``, ``save``, ``load``, ``tiny_config``), so the
store, the evaluation harness, the CLI and the service can treat them alike.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Literal, Mapping, Optional

import numpy as np
import pandas as pd
import pydantic
import torch
from safetensors.torch import load_file, save_file

from ..config import GeneratorConfig
from ..data.datasets import LabelledData, LabelledImages, LabelledTable
from ..progress import ProgressCallback

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass
class Samples:
    """Generated examples: images (uint8 NHWC) or table rows, their labels, and per-sample provenance."""

    data: np.ndarray | pd.DataFrame
    labels: np.ndarray
    class_names: list[str]
    provenance: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)  # e.g. filter draws and rejections

    def __len__(self) -> int:
        return len(self.labels)

    def to_dataset(self) -> LabelledData:
        """The samples as a ``LabelledImages`` / ``LabelledTable`` (sources say they are synthetic)."""
        sources = [f"synthetic:{p.get('sampler', 'sample')}:{i}" for i, p in enumerate(self.provenance)]
        if isinstance(self.data, pd.DataFrame):
            return LabelledTable(self.data, self.labels, list(self.class_names), sources or [])
        return LabelledImages(self.data, self.labels, list(self.class_names), sources or [])

    @staticmethod
    def concat(parts: list["Samples"]) -> "Samples":
        """One ``Samples`` from several (same class names)."""
        if not parts:
            raise ValueError("concat: nothing to concatenate")
        first = parts[0]
        if isinstance(first.data, pd.DataFrame):
            data = pd.concat([p.data for p in parts], ignore_index=True)
        else:
            data = np.concatenate([p.data for p in parts])
        stats: dict[str, int] = {}
        for part in parts:
            for key, value in part.stats.items():
                stats[key] = stats.get(key, 0) + value
        return Samples(data, np.concatenate([p.labels for p in parts]), list(first.class_names),
                       [prov for p in parts for prov in p.provenance], stats)


class SampleOptions(pydantic.BaseModel):
    """Base of every kind's sample options (``Generator.SampleOptions``): typed, validated by the
    base class before ``sample`` runs, and exported as JSON schema to the CLI, the API and the UI.

    An option left out of a call takes the model's own config value (``overrides()`` holds only
    the options a call set), so a field's ``default`` here documents the kind's default config."""

    # strict: a JSON true or "3" is not a number (ints still pass for float options).
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    # Other names a call may use for an option ({alias: option}), e.g. the CLI's generic "sampler".
    aliases: ClassVar[dict[str, str]] = {}
    # Options declared after evaluation cells were cached with the kind: their defaults stay out of a
    # cell's identity so that those cells keep their hash (a variant that sets one still hashes it).
    identity_defaults_exclude: ClassVar[frozenset[str]] = frozenset()
    # {option: config field} for the options that mirror a config field (``options_from_config``
    # fills it; a kind that writes its options by hand and mirrors config fields must set it):
    # left out of a call, such an option takes the model's config value, not the default here, and
    # an evaluation cell's identity tells the two apart (``identity.options_set_over_config``).
    config_fields: ClassVar[dict[str, str]] = {}

    def overrides(self) -> dict[str, Any]:
        """The options this call set, by name (what replaces the model's config values)."""
        return self.model_dump(exclude_unset=True)


def options_from_config(name: str, config_class: type[pydantic.BaseModel], fields: Mapping[str, str], *,
                        base: type[SampleOptions] = SampleOptions, **extra: Any) -> type[SampleOptions]:
    """A ``SampleOptions`` model (subclass of ``base``) whose options mirror config fields
    (``{option: config field}``: same type, bounds, default and description, so the two never
    disagree), plus ``extra`` pydantic field definitions (``name=(type, Field(...))``)."""
    definitions: dict[str, Any] = {}
    for option, field_name in fields.items():
        info = copy.copy(config_class.model_fields[field_name])
        definitions[option] = (info.annotation, info)
    definitions.update(extra)
    model = pydantic.create_model(name, __base__=base, **definitions)
    model.config_fields = dict(fields)
    return model


def resolve_seed(seed: Optional[int]) -> int:
    """The seed a ``sample`` call uses: ``seed`` itself, or fresh entropy when it is None (one rule
    for every kind; a seeded call never depends on the global RNGs)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2 ** 63)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an integer or None, got {seed!r}")
    return int(seed)


def compute_device() -> torch.device:
    """Where kinds train and sample: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's global generators for a fit (weight init, dropout, kornia) and restore the
    caller's state afterwards: a fit is reproducible and leaves the global RNGs untouched."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class NotFittedError(RuntimeError):
    """Raised when ``sample`` or ``save`` is called before ``fit``."""


class Generator(ABC):
    """Base class of every generator kind.

    ``__init__`` only validates and stores the config; ``fit`` sees the training split
    only and returns ``self``; ``sample`` is deterministic for a given seed.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[GeneratorConfig]]
    data_kind: ClassVar[str] = "images"  # "images" or "table": what fit accepts
    summary: ClassVar[str] = ""  # one line for CLI help
    # What the kind is good for, in plain words, for people who are not generative-model experts
    # (the web UI's one description of the kind; no paper names or sampler jargon).
    description: ClassVar[str] = ""
    # What a saved model of this kind holds of its training data, for whoever shares it: anyone
    # with access to the registry can load it. "images": copies of the training images (sample
    # sources); "encodings": their latent codes, which decode to near-copies; "none": weights
    # only (a network can still memorise what it saw).
    keeps_training_data: ClassVar[Literal["images", "encodings", "none"]] = "none"
    # The kind's code version: bump it when fit or sample change what they produce, so cached
    # evaluation cells and generator fits made by the old code are recomputed, not reused.
    version: ClassVar[str] = "1"
    # Named config fields sized for a CPU ("quick", "standard", "best"; see genaug.presets), shown
    # by the web UI and ``genaug train --preset``; empty for kinds that do not train.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Forms of the web UI that tick this kind by default ("train", "evaluate"): the UI's hints come
    # from here, so a new kind is one module and nothing else.
    preselected: ClassVar[tuple[str, ...]] = ()
    # The options ``sample`` takes (a ``SampleOptions`` model; none by default).
    SampleOptions: ClassVar[type[SampleOptions]] = SampleOptions
    # Declared capabilities (the runner, the API and the UI read these; no probing for methods):
    # the config modes in which ``fit(data, unlabeled=images)`` also learns from images without
    # labels and ``use_examples(data)`` then sets the labelled examples samples start from ...
    uses_unlabeled_pool: ClassVar[tuple[str, ...]] = ()
    # ... and whether ``warm_start(parent)`` can start a fit from another model's weights.
    supports_warm_start: ClassVar[bool] = False

    def __init__(self, config: GeneratorConfig | dict | None = None, **overrides: Any):
        if isinstance(config, pydantic.BaseModel):
            config = config.model_dump()
        values = {**(config or {}), **overrides}
        self.config = self.Config.model_validate(values)
        self.class_names: list[str] = []
        self.meta: dict[str, Any] = {}
        self.fitted = False

    # -- the contract --------------------------------------------------------
    @abstractmethod
    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None) -> "Generator":
        """Learn from ``data`` (the training split only) and return ``self``."""

    def sample(self, n: int, *, label: int | str | None = None, seed: Optional[int] = None,
               **options: Any) -> Samples:
        """``n`` new examples of class ``label`` (all classes, balanced, when None); the same
        ``seed`` gives the same examples, ``seed=None`` fresh ones. ``options``: the kind's
        ``SampleOptions`` (validated here, before anything is drawn)."""
        self._require_fitted()
        chosen = self.validate_sample_options(options)
        return self._sample(self.split_counts(n, label), resolve_seed(seed), chosen)

    def _sample(self, counts: dict[int, int], seed: int, options: SampleOptions) -> Samples:
        """Draw ``counts[c]`` examples of every class ``c`` with ``seed`` and the validated
        ``options``; kinds implement this (or, as a plugin may, override ``sample`` itself)."""
        raise NotImplementedError(f"{self.kind}: implement _sample (or override sample)")

    @abstractmethod
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything learned, as named tensors (written as safetensors)."""

    @abstractmethod
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_tensors`` returned."""

    @classmethod
    @abstractmethod
    def tiny_config(cls) -> GeneratorConfig:
        """A config that fits and samples in seconds on a CPU (tests)."""

    @classmethod
    def sample_options(cls) -> dict[str, dict[str, Any]]:
        """The options ``sample`` takes, as JSON-schema properties (name -> schema with default):
        ``SampleOptions``'s schema, which the CLI's help, the service and the UI's form show."""
        return dict(cls.SampleOptions.model_json_schema().get("properties", {}))

    @classmethod
    def validate_sample_options(cls, options: Mapping[str, Any]) -> SampleOptions:
        """``options`` as the kind's ``SampleOptions``, or a ``ValueError`` naming ``options.<name>``
        and what is wrong (an unknown option lists the known ones)."""
        model = cls.SampleOptions
        options = dict(options)
        for alias, name in model.aliases.items():
            if alias in options:
                if name in options:
                    raise ValueError(f"options.{alias}: '{alias}' is another name for '{name}'; give one of them")
                options[name] = options.pop(alias)
        unknown = sorted(set(options) - set(model.model_fields))
        if unknown == ["filter"]:  # the option vae and tabular_vae had before the filter stage took it over
            raise ValueError("options.filter: the generative classifier is a filter now; ask for it with "
                             "filters: ['generative-classifier'] (CLI: --filter generative-classifier; a model "
                             "trained with it applies it by default)")
        if unknown:
            raise ValueError(f"options: unknown option {', '.join(map(repr, unknown))} for kind '{cls.kind}'; "
                             f"it takes {', '.join(sorted(model.model_fields)) or 'none'}")
        try:
            return model.model_validate(options)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "options"
            raise ValueError(f"options.{where}: {first['msg']} (got {first.get('input')!r})") from None

    @classmethod
    def tiny_variants(cls) -> dict[str, GeneratorConfig]:
        """Tiny configs of every mode worth testing (the conformance suite runs each)."""
        return {"default": cls.tiny_config()}

    def parameter_count(self, image_shape: tuple[int, int, int], class_names: list[str]) -> Optional[int]:
        """Trainable numbers a fit on H x W x C images of these classes would create, or None when
        this kind cannot say. Kinds build their networks on torch's meta device to count them
        (nothing is allocated), so the service can refuse an impossible config when it is
        submitted instead of when a worker runs out of memory."""
        return None

    def generative_classifier(self) -> Optional[tuple[Any, Callable[[Any], np.ndarray]]]:
        """(the real-vs-noise network trained with this model, the function that turns a sample
        batch's data into its input), or None when the model has none. The filter stage's
        ``generative-classifier`` filter applies it; kinds that train one override this."""
        return None

    def warm_start(self, parent: "Generator") -> None:
        """Start the next ``fit`` from ``parent``'s weights (transfer); kinds that can, override this."""
        raise ValueError(f"{self.kind}: this kind cannot start from another model (no transfer support)")

    # -- shared behaviour ----------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``weights.safetensors`` into ``directory`` (no pickle)."""
        if not self.fitted:
            raise NotFittedError(f"{self.kind}: call fit() before save()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        document = {"kind": self.kind, "config": self.config.model_dump(mode="json"),
                    "class_names": self.class_names, "meta": self.meta}
        (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2))
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_tensors().items()}
        save_file(tensors, str(directory / WEIGHTS_FILE))

    @classmethod
    def load(cls, directory: str | Path) -> "Generator":
        """Rebuild a fitted generator from a folder written by ``save``."""
        directory = Path(directory)
        document = json.loads((directory / CONFIG_FILE).read_text())
        if document.get("kind") != cls.kind:
            raise ValueError(f"{directory}: holds a '{document.get('kind')}' model, not '{cls.kind}'")
        generator = cls(document["config"])
        generator.class_names = list(document["class_names"])
        generator.meta = dict(document.get("meta", {}))
        generator.load_state_tensors(load_file(str(directory / WEIGHTS_FILE)))
        generator.fitted = True
        return generator

    def label_index(self, label: int | str) -> int:
        """Class index for a class name or index; a clear error for anything else."""
        if isinstance(label, str) and label in self.class_names:
            return self.class_names.index(label)
        if isinstance(label, (int, np.integer)) and 0 <= int(label) < len(self.class_names):
            return int(label)
        raise ValueError(f"label: {label!r} is not one of the classes {self.class_names}")

    def split_counts(self, n: int, label: int | str | None) -> dict[int, int]:
        """How many samples of each class a ``sample(n, label=...)`` call makes."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if label is not None:
            return {self.label_index(label): n}
        k = len(self.class_names)
        return {c: n // k + (1 if c < n % k else 0) for c in range(k)}

    def grid_labels(self, key: str, count: int, class_indices=None) -> Optional[list[str]]:
        """Class names of a training grid's ``count`` images: from ``class_indices`` (a class-
        conditional network), from the group ``key`` of a one-model-per-class training (``"3"``
        or ``"class3"``), or None when the images have no class (one model for all)."""
        if class_indices is not None:
            return [self.class_names[int(i)] for i in class_indices]
        digits = key.removeprefix("class")
        if digits.isdigit() and int(digits) < len(self.class_names):
            return [self.class_names[int(digits)]] * count
        return None

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"{self.kind}: call fit() before sample()")

    def _check_data(self, data: LabelledData) -> None:
        expected = LabelledTable if self.data_kind == "table" else LabelledImages
        if not isinstance(data, expected):
            raise TypeError(f"{self.kind} trains on {self.data_kind}, got {type(data).__name__}")
        if len(data) == 0:
            raise ValueError(f"{self.kind}: the training data is empty")


_KINDS: dict[str, type[Generator]] = {}


def register(kind: str):
    """Class decorator: make a generator available under ``kind``."""

    def decorate(cls: type[Generator]) -> type[Generator]:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ValueError(f"generator kind '{kind}' is already registered")
        cls.kind = kind
        _KINDS[kind] = cls
        return cls

    return decorate


def _load_entry_points() -> None:
    # Third-party generators announce themselves in the entry-point group "genaug.generators".
    for entry in metadata.entry_points(group="genaug.generators"):
        if entry.name not in _KINDS:
            entry.load()


def generator_kinds() -> dict[str, type[Generator]]:
    """Every registered kind, built-in and from installed plugins."""
    # Importing a module registers its kinds: every module of this package is imported, so a new
    # built-in kind is one module and nothing else (the helpers are imported by the kinds anyway).
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{module.name}")

    if not os.environ.get("GENAUG_NO_PLUGINS"):
        _load_entry_points()
    return dict(_KINDS)


def get_generator_class(kind: str) -> type[Generator]:
    """The class registered under ``kind``; the error lists the kinds there are."""
    kinds = generator_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown generator kind '{kind}'; known kinds: {', '.join(sorted(kinds))}")
    return kinds[kind]


def load_generator(directory: str | Path) -> Generator:
    """Load any saved generator, picking the class from its ``config.json``."""
    document = json.loads((Path(directory) / CONFIG_FILE).read_text())
    return get_generator_class(document["kind"]).load(directory)


def tensors_under(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, with the prefix removed (one module's state
    dict out of a model's ``state_tensors``)."""
    return {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}


def count_parameters(*modules: torch.nn.Module) -> int:
    """The number of parameters of ``modules`` (works on the meta device)."""
    return int(sum(p.numel() for module in modules for p in module.parameters()))
