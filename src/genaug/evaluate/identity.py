"""What identifies an evaluation cell or a generator fit, so that nothing stale is ever reused.

A cell's identity is the hash of everything that decides its value, apart from n, seed and the
arm's name (which name the cell's file): the protocol (every field, defaults included), the
classifier and its version, the train and test fingerprints, and for a generator arm the kind,
the kind's code version, the fully validated config (defaults included), whether it learns from
an unlabeled pool, and the sample variant with the kind's sample options filled in. Changing a
default, bumping a version or touching one pixel of the data gives another identity: the cell is
recomputed.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Optional

from ..filters import FILTERS_VERSION, uses_generative_classifier
from ..generators.base import get_generator_class

if TYPE_CHECKING:
    from .classifiers import ClassifierChoice
    from .protocol import GeneratorSpec, Protocol, SampleVariant


# Kinds whose ``sample`` had a ``filter`` option (the generative classifier) before it became a
# filter of the post-sample stage.
FORMER_FILTER_OPTION = ("vae", "tabular_vae")


def _hash(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def validated_config(spec: "GeneratorSpec") -> dict:
    """The spec's config as its kind validates it: every field, defaults included."""
    cls = get_generator_class(spec.kind)
    try:
        return cls.Config.model_validate(spec.config).model_dump(mode="json")
    except Exception as error:
        raise ValueError(f"generator '{spec.label}': invalid {spec.kind} config: {error}") from None


def _given_options(cls: type, variant: "SampleVariant") -> dict:
    """The variant's options under their canonical names ("solver" -> "scheduler")."""
    aliases = cls.SampleOptions.aliases
    return {aliases.get(name, name): value for name, value in variant.options.items()}


def sample_options(spec: "GeneratorSpec", variant: "SampleVariant") -> dict:
    """The variant's sample options over the kind's declared defaults; unknown names refused."""
    cls = get_generator_class(spec.kind)
    declared = cls.sample_options()
    given = _given_options(cls, variant)
    unknown = sorted(set(given) - set(declared))
    if "filter" in unknown and spec.kind in FORMER_FILTER_OPTION:
        raise ValueError(f"generator '{spec.label}' variant '{variant.label}': the 'filter' option is gone; the "
                         "generative classifier is a filter now: SampleVariant(filters=['generative-classifier'])")
    if unknown:
        raise ValueError(f"generator '{spec.label}' variant '{variant.label}': unknown sample option(s) {unknown}; "
                         f"{spec.kind} takes {sorted(declared) or 'none'}")
    left_out = cls.SampleOptions.identity_defaults_exclude
    defaults = {name: schema["default"] for name, schema in declared.items()
                if "default" in schema and name not in left_out}
    # An option left out of the identity at its default is left out too when given at its default.
    given = {name: value for name, value in given.items()
             if not (name in left_out and "default" in declared[name] and declared[name]["default"] == value)}
    return {**defaults, **given}


def options_set_over_config(spec: "GeneratorSpec", variant: "SampleVariant",
                            config: Optional[dict] = None) -> dict:
    """The options the variant sets to the kind's default where the config has another value.

    ``sample_options`` fills a left-out option with the kind's default, while the draw takes the
    config's value: under a config that changed an option, leaving it out and setting it to the
    default would hash alike yet draw differently. Only these settings add to a cell's identity
    (every other cell keeps its hash). ``config``: the spec's validated config, when the caller
    already has it."""
    cls = get_generator_class(spec.kind)
    declared = cls.sample_options()
    config = validated_config(spec) if config is None else config
    marked = {}
    for name, value in _given_options(cls, variant).items():
        field = cls.SampleOptions.config_fields.get(name)
        if field is None or "default" not in declared.get(name, {}):
            continue
        if value == declared[name]["default"] and config.get(field) != value:
            marked[name] = value
    return marked


def fit_identity(spec: "GeneratorSpec", train_fingerprint: str) -> str:
    """Identity of a generator fit (its checkpoint folder): kind, version, config, pool, data."""
    cls = get_generator_class(spec.kind)
    return _hash({"kind": spec.kind, "version": cls.version, "config": validated_config(spec),
                  "unlabeled_pool": spec.unlabeled_pool, "classes": spec.classes,
                  "augment_copies": spec.augment_copies, "train": train_fingerprint})


def fitted_key(fit: str, real_fingerprint: str, seed: int, classic: Optional[dict]) -> str:
    """Identity of one finished fit: the fit's identity, the exact images it learned (the few-shot
    subset's fingerprint; a pool fit, which learns the training split already in ``fit``, passes
    a fixed marker), the seed and the classic augmentation that may expand them. Independent of
    the classifier, so every classifier's run reuses the same fitted generator."""
    return _hash({"fit": fit, "real": real_fingerprint, "seed": seed, "classic": classic})


def cell_identity(protocol: "Protocol", classifier: "ClassifierChoice", train_fingerprint: str,
                  test_fingerprint: str, spec: Optional["GeneratorSpec"] = None,
                  variant: Optional["SampleVariant"] = None, ood: Optional[dict[str, str]] = None) -> str:
    """Hash of everything that decides a cell's value except n, seed and the arm's name; ``ood``:
    the fingerprints of the OOD sets by name (when the cells score OOD detection)."""
    relevant: dict[str, Any] = {
        # quality_samples adds numbers to a cell without changing its score (a cell cached without
        # them is recomputed when they are asked for: see evaluate()).
        "protocol": protocol.model_dump(mode="json", exclude={"shots", "seeds", "arms", "quality_samples"}),
        "classifier": classifier.version, "train": train_fingerprint, "test": test_fingerprint}
    if ood:  # only when asked: cells without OOD sets hash as before
        from .ood import OOD_VERSION

        relevant["ood"] = {"sets": dict(ood), "version": OOD_VERSION}
    if spec is not None:
        assert variant is not None, "a generator arm's identity needs its sample variant"
        config = validated_config(spec)
        relevant["generator"] = {"kind": spec.kind, "version": get_generator_class(spec.kind).version,
                                 "config": config, "unlabeled_pool": spec.unlabeled_pool,
                                 "classes": spec.classes, "augment_copies": spec.augment_copies,
                                 # a stored model is identified by its registry id (its weights)
                                 "model": None if spec.model is None else spec.model.id}
        # No filters: the variant hashes as it did before filters existed (older cells stay valid).
        excluded = {"label", "options", "arms", "negatives"} | (set() if variant.filters else {"filters"})
        options = sample_options(spec, variant)
        if (spec.kind in FORMER_FILTER_OPTION and config.get("generative_classifier") is True
                and not uses_generative_classifier(variant.filters)):
            # These kinds took a ``filter`` sample option before their generative classifier became
            # a stage filter, and filtered by default when trained with it. A draw without it is
            # unchanged, so it hashes as ``filter=False`` did then (such cached cells stay valid;
            # the old default draw, filtered, hashed without the key and is recomputed). Without
            # the classifier the old default draw was unfiltered and hashed as it does now.
            options = {**options, "filter": False}
        relevant["variant"] = {**variant.model_dump(mode="json", exclude=excluded), "options": options}
        if over_config := options_set_over_config(spec, variant, config):
            relevant["variant"]["set_over_config"] = over_config
        if variant.negatives is not None:  # absent otherwise: cells without negatives hash as before
            from .contrastive import SUPCON_VERSION
            from .protocol import NEGATIVE_SEED_OFFSET, NEGATIVES_VERSION, negatives_variant

            negatives = negatives_variant(spec, variant)
            relevant["variant"]["negatives"] = {
                **variant.negatives.model_dump(mode="json", exclude={"options"}),
                "options": sample_options(spec, negatives), "seed_offset": NEGATIVE_SEED_OFFSET,
                "supcon": SUPCON_VERSION}
            if over_config := options_set_over_config(spec, negatives, config):
                relevant["variant"]["negatives"]["set_over_config"] = over_config
            if NEGATIVES_VERSION != 1:  # version 1 hashed without the key (cells cached then stay valid)
                relevant["variant"]["negatives"]["version"] = NEGATIVES_VERSION
        if variant.filters:
            from ..filters.stage import DRAW_MARGIN, MAX_ROUNDS
            from ..pretrained.lite0 import LITE0_INPUT_SIZE, LITE0_NORMALISATION, LITE0_VERSION

            # the filters judge in the Lite0 feature space and redraw by these rules
            relevant["filters_version"] = {"filters": FILTERS_VERSION, "max_rounds": MAX_ROUNDS,
                                           "draw_margin": DRAW_MARGIN,
                                           "lite0": [LITE0_VERSION, LITE0_INPUT_SIZE, LITE0_NORMALISATION]}
    return _hash(relevant)


# A kept draw of generated images (``sample_cache``): its file layout and the runner's drawing rules
# (``protocol._sample``: the per-class seed, the label mapping of a generator fitted on some classes,
# the empty draw). Bump either and older draws are drawn again.
SAMPLES_FORMAT = 1
DRAW_VERSION = 1


def set_options(kind_class, options: dict) -> dict:
    """The options a sample call sets, validated, aliases resolved: what replaces the fit's config
    values. (Not the options with the kind's defaults filled in: a config that changed an
    option's default draws otherwise than a call that sets that default.)"""
    return kind_class.validate_sample_options(options).model_dump(mode="json", exclude_unset=True)


def sample_key(fit_key: str, real_fingerprint: str, options: dict, counts: dict[int, int], seed: int) -> str:
    """Identity of one draw: the finished fit, the images it varies, the options the call sets
    (``set_options``), the class counts and the seed."""
    document = {"fit": fit_key, "real": real_fingerprint, "options": options,
                "counts": {str(c): int(k) for c, k in sorted(counts.items())}, "seed": seed, "format": SAMPLES_FORMAT,
                "draw": DRAW_VERSION}
    return _hash(document)
