"""genaug.data: ingest with a validation report, labelled datasets, splits, bundled data.

``data`` imports nothing else of genaug (except the progress events every layer reports).
"""
from .builtin import find_data_file, load_digits_dataset, load_mnist, load_proben1
from .datasets import LabelledData, LabelledImages, LabelledTable
from .ingest import IngestResult, ingest
from .ingest_images import ImagePolicy
from .report import FileVerdict, IngestError, IngestReport
from .splits import few_shot_subset, stratified_split

__all__ = [
    "FileVerdict",
    "ImagePolicy",
    "IngestError",
    "IngestReport",
    "IngestResult",
    "LabelledData",
    "LabelledImages",
    "LabelledTable",
    "few_shot_subset",
    "find_data_file",
    "ingest",
    "load_digits_dataset",
    "load_mnist",
    "load_proben1",
    "stratified_split",
]
