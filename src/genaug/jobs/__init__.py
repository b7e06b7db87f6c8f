"""Jobs: the queue in the registry database, the workers that run it, and what each job type does."""
from .table import (CANCELLED, FAILED, FINISHED, JOB_STATUSES, JOB_TYPES, QUEUED, RUNNING, SUCCEEDED, JobNotFoundError,
                    JobRow, JobStore)

__all__ = ["CANCELLED", "FAILED", "FINISHED", "JOB_STATUSES", "JOB_TYPES", "QUEUED", "RUNNING", "SUCCEEDED",
           "JobNotFoundError", "JobRow", "JobStore"]
