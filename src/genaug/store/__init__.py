"""The store: the model registry (rows), artifact folders (files) and generation output.

It knows rows and files, not how a generator works inside: it only calls ``save``/``load``.
"""
from .artifacts import cleanup_stale_folders, model_dir, remove_model_folders, write_artifact_atomically
from .manifest import MANIFEST_FILE, TABLE_FILE, SampleWriter, class_folder_names, prepare_out_dir
from .registry import (
    FAILED,
    READY,
    TRAINING,
    ModelBusyError,
    ModelExistsError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelRow,
    Registry,
    genaug_home,
    json_safe,
    validate_name,
)

__all__ = [
    "FAILED", "READY", "TRAINING", "MANIFEST_FILE", "TABLE_FILE",
    "ModelBusyError", "ModelExistsError", "ModelNotFoundError", "ModelNotReadyError", "ModelRow",
    "Registry", "SampleWriter", "class_folder_names", "cleanup_stale_folders", "genaug_home",
    "json_safe", "model_dir", "prepare_out_dir", "remove_model_folders", "validate_name",
    "write_artifact_atomically",
]
