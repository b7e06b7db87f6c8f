"""The service's settings live in ``genaug.settings`` (the job workers read them too)."""
from ..settings import ServiceSettings

__all__ = ["ServiceSettings"]
