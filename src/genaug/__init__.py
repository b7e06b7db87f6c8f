"""genaug: generative data augmentation for small labelled datasets, with the numbers to prove it helps.

The public API (the CLI, the service and the benchmarks call only these)::

    from genaug import ingest, train, generate, evaluate
    result = ingest("flowers/", image_size=64)            # LabelledImages + a report of every file
    info = train(result.data, "vae", "flowers-vae")        # fitted, stored atomically, listed when ready
    generate("flowers-vae", "synthetic/", n_per_class=100) # PNGs + manifest.jsonl
"""
from .api import (
    GenerationResult,
    ModelInfo,
    cleanup,
    delete_model,
    generate,
    get_model,
    list_models,
    load_model,
    train,
    validate_config,
)
from .data import (
    IngestReport,
    IngestResult,
    LabelledImages,
    LabelledTable,
    few_shot_subset,
    ingest,
    load_digits_dataset,
    load_mnist,
    load_proben1,
    stratified_split,
)
from .evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, write_report
from .generators.base import Generator, GeneratorConfig, Samples, generator_kinds, get_generator_class, register
from .store.datasets import list_datasets, load_dataset, save_dataset

__version__ = "0.1.0"

__all__ = [
    "Generator", "GeneratorConfig", "GeneratorSpec", "GenerationResult", "IngestReport", "IngestResult",
    "LabelledImages", "LabelledTable", "ModelInfo", "Protocol", "SampleVariant", "Samples", "cleanup",
    "delete_model", "evaluate", "few_shot_subset", "generate", "generator_kinds", "get_generator_class",
    "get_model", "ingest", "list_datasets", "list_models", "load_dataset", "load_digits_dataset", "load_mnist",
    "load_model", "load_proben1", "register", "save_dataset", "stratified_split", "train", "validate_config",
    "write_report",
]
