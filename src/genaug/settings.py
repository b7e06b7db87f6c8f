"""Settings of the service and its workers, read from the environment (``GENAUG_*``) by pydantic-settings."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .store.registry import genaug_home


class ServiceSettings(BaseSettings):
    """Where the data lives, who may do what, and the limits of one request."""

    model_config = SettingsConfigDict(env_prefix="GENAUG_", extra="ignore")

    home: Optional[Path] = Field(None, description="registry, datasets and job outputs (default ~/.genaug)")
    database_url: Optional[str] = Field(None, description="SQLAlchemy URL; default: the SQLite file in home")
    read_requires_token: bool = Field(False, description="GET requests need a token too")
    max_upload_bytes: int = Field(500 * 1024 * 1024, ge=1, description="largest request body of an upload")
    max_files_per_upload: int = Field(5000, ge=1, description="most files in one upload (also members of one archive)")
    max_archive_ratio: float = Field(200.0, gt=1, description="an archive expanding more than this many times its "
                                                              "size is refused as an archive bomb")
    max_image_pixels: int = Field(50_000_000, ge=1, description="larger images are rejected (decompression bombs)")
    max_generate_n: int = Field(10_000, ge=1, description="most images one generate job may ask for")
    max_request_bytes: int = Field(1024 * 1024, ge=1024, description="largest request body other than an upload")
    max_train_steps: int = Field(200_000, ge=1, description="most training steps a job's config may ask for")
    max_model_parameters: int = Field(300_000_000, ge=1,
                                      description="largest networks a job may train (parameters; ~16 bytes each)")
    heartbeat_timeout: float = Field(30.0, gt=0, description="seconds without a heartbeat before a job is re-queued")
    job_threads: int = Field(0, ge=0, description="torch threads per job process (0: torch's default)")
    models_dir: Optional[Path] = Field(None, description="folder of pretrained models (e.g. Stable Diffusion folders "
                                                        "for dafusion) that jobs may name by subfolder; none: jobs "
                                                        "may not name one")

    def max_extracted_bytes(self) -> int:
        """What one uploaded archive may expand to: twice the upload limit (images barely compress)."""
        return 2 * self.max_upload_bytes

    def home_path(self) -> Path:
        """The absolute genaug home."""
        return genaug_home(self.home)
