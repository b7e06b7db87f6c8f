"""``genaug serve``: the HTTP app in this process plus job workers as child processes.

Workers are separate processes (``python -m genaug.jobs.worker``) so that a job never
blocks a request, and so that more of them can be started elsewhere (``genaug worker``)
against the same database. A worker that dies is started again; on shutdown every worker
gets SIGTERM, puts its running job back in the queue, and exits.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

from .settings import ServiceSettings

RESTART_DELAY_SECONDS = 1.0


class WorkerPool:
    """Keeps ``count`` worker processes running until ``stop``."""

    def __init__(self, count: int, env: Optional[dict[str, str]] = None):
        self.count, self.env = count, env
        self.processes: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _start_one(self) -> subprocess.Popen:
        # --exit-with-parent: a worker whose server was killed hard stops too (re-queueing its job).
        return subprocess.Popen([sys.executable, "-m", "genaug.jobs.worker", "--exit-with-parent"], env=self.env)

    def start(self) -> None:
        """Start the workers and a thread that restarts any that die."""
        self.processes = [self._start_one() for _ in range(self.count)]
        self._thread = threading.Thread(target=self._watch, daemon=True, name="genaug-worker-pool")
        self._thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_DELAY_SECONDS):
            for index, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping.is_set():
                    print(f"genaug serve: worker pid {process.pid} exited ({process.returncode}); starting another",
                          file=sys.stderr, flush=True)
                    self.processes[index] = self._start_one()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every worker (each re-queues its running job), then SIGKILL stragglers."""
        self.stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          settings: Optional[ServiceSettings] = None, log_level: str = "info") -> None:
    """Run the API on ``host:port`` with ``workers`` job workers until interrupted."""
    import uvicorn

    from .app import create_app

    settings = settings or ServiceSettings()
    home = settings.home_path()
    # Every temporary file of the service and its jobs stays inside GENAUG_HOME (uploads are
    # extracted there anyway): torch's compile cache and anything a library puts in TMPDIR too.
    temporary = home / "tmp"
    temporary.mkdir(parents=True, exist_ok=True)
    for name, value in (("TMPDIR", temporary), ("TORCHINDUCTOR_CACHE_DIR", temporary / "torchinductor")):
        os.environ[name] = str(value)
    tempfile.tempdir = str(temporary)
    env = dict(os.environ)
    env["GENAUG_HOME"] = str(home)
    if settings.database_url:
        env["GENAUG_DATABASE_URL"] = settings.database_url
    pool = WorkerPool(workers, env)
    pool.start()
    # uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down; with the default
    # handler that would end this process before the workers are stopped (they would go on
    # running jobs as orphans). Ignore the re-raised signal: the finally block below runs.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=5)
        uvicorn.Server(config).run()
    finally:
        pool.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
