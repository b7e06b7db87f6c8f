"""The real service for the API tests: ``genaug serve`` as a subprocess over HTTP, with a worker.

One server per test module (starting one imports torch: seconds), a temporary GENAUG_HOME,
and the module's registry database (the SQLite file, or a PostgreSQL database in the
``GENAUG_TEST_DATABASE=postgresql`` run). Limits are set low so the tests can cross them.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import httpx
import numpy as np
import pytest
from PIL import Image

from genaug.store.registry import Registry
from genaug.store.tokens import create_token

TEST_LIMITS = {"GENAUG_MAX_UPLOAD_BYTES": "3000000", "GENAUG_MAX_FILES_PER_UPLOAD": "300",
               "GENAUG_MAX_IMAGE_PIXELS": "1000000",
               "GENAUG_MAX_GENERATE_N": "500", "GENAUG_HEARTBEAT_TIMEOUT": "6", "GENAUG_JOB_THREADS": "1"}
# A VAE that trains in about a second on one CPU thread (16 px grayscale digits).
TINY_VAE = {"steps": 40, "batch_size": 16, "channels": [4, 8], "hidden": 16, "latent_dim": 2,
            "generative_classifier": False, "sample_every": 20}


# Tries at starting a service on a fresh port when the first one was taken (see port_was_taken).
PORT_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def digit_pngs(per_class: int = 12, classes=(0, 1), size: int = 16) -> dict[str, bytes]:
    """``{"c0/0.png": bytes, ...}``: real images (sklearn's digits), upscaled, as PNG files."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    files = {}
    for c in classes:
        for i, index in enumerate(np.flatnonzero(digits.target == c)[:per_class]):
            image = Image.fromarray((digits.images[index] * 16).clip(0, 255).astype(np.uint8)).resize((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            files[f"c{c}/{i}.png"] = buffer.getvalue()
    return files


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class Service:
    """A running service: its URL, a token, its home, and helpers for the tests."""

    url: str
    token: str
    home: Path
    process: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def upload(self, name: str, files: dict[str, bytes], **fields: Any) -> httpx.Response:
        parts = [("files", (path, data, "application/octet-stream")) for path, data in files.items()]
        with self.client() as client:
            return client.post("/api/datasets", headers=self.auth, files=parts,
                               data={"name": name, **{k: str(v) for k, v in fields.items()}})

    def submit(self, job_type: str, params: dict) -> httpx.Response:
        with self.client() as client:
            return client.post("/api/jobs", headers=self.auth, json={"type": job_type, "params": params})

    def wait(self, job_id: str, timeout: float = 120, until=("succeeded", "failed", "cancelled")) -> dict:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                job = client.get(f"/api/jobs/{job_id}").json()
                if job["status"] in until:
                    return job
                if time.monotonic() > deadline:
                    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job['log'][-5:]}"
                                         f"\nserver log:\n{self.log_tail()}")
                time.sleep(0.2)

    def get_json(self, path: str) -> Any:
        with self.client() as client:
            return client.get(path).json()

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def make_token(home: Path, url: Optional[str], name: str = "tester") -> str:
    with Registry.open(home, url) as registry:
        return create_token(registry, name)


def cli_token(env: dict[str, str], name: str) -> str:
    """A token made the way a user makes one: ``genaug token create NAME`` (printed on stdout)."""
    created = subprocess.run([sys.executable, "-m", "genaug.cli", "token", "create", name], env=env,
                             capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, f"genaug token create failed:\n{created.stdout}\n{created.stderr}"
    token = created.stdout.strip().splitlines()[-1].strip() if created.stdout.strip() else ""
    assert token.startswith("ga_"), f"no token on stdout: {created.stdout!r} / {created.stderr!r}"
    return token


def wait_healthy(url: str, process: Optional[subprocess.Popen], log_path: Optional[Path], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited ({process.returncode}):\n"
                               + (log_path.read_text(errors="replace")[-3000:] if log_path else ""))
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service at {url} did not answer within {timeout} s")


def start_service(home: Path, database_url: Optional[str], *, workers: int = 1, extra_env: Optional[dict] = None,
                  log_name: str = "serve.log", token_name: str = "tester", token_via_cli: bool = False,
                  limits: bool = True) -> Service:
    """``genaug serve`` in a subprocess on a free loopback port (its own process group).

    ``limits``: the low test limits of ``TEST_LIMITS`` (else the service's defaults);
    ``token_via_cli``: make the token with ``genaug token create`` instead of in-process.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GENAUG_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           **(TEST_LIMITS if limits else {"GENAUG_JOB_THREADS": "1"}), **(extra_env or {})}
    env.pop("GENAUG_READ_REQUIRES_TOKEN", None)
    env.pop("GENAUG_DATABASE_URL", None)
    if database_url:
        env["GENAUG_DATABASE_URL"] = database_url
    token = cli_token(env, token_name) if token_via_cli else make_token(home, database_url, token_name)
    log_path = home.parent / log_name
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "genaug.cli", "serve", "--host", "127.0.0.1", "--port",
                                        str(port), "--workers", str(workers), "--log-level", "warning"],
                                       env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        service = Service(f"http://127.0.0.1:{port}", token, home, process, log_path, env)
        try:
            wait_healthy(service.url, process, log_path)
            return service
        except BaseException as error:
            stop_service(service)
            if attempt + 1 < PORT_ATTEMPTS and port_was_taken(error):
                continue
            raise
    raise AssertionError("unreachable")


def port_was_taken(error: BaseException) -> bool:
    """Whether a service failed to start only because its port was bound by someone else meanwhile.

    ``free_port`` releases the port it found, and ``genaug serve`` binds it again seconds later
    (after importing torch): with the suite's two xdist workers, another test's server can take
    it in between. That is the test harness's race, not the service's failure: start again."""
    return isinstance(error, RuntimeError) and "address already in use" in str(error).lower()


def stop_service(service: Service, grace: float = 30.0) -> None:
    """SIGTERM the server (it stops its workers), then SIGKILL whatever of its group is left."""
    process = service.process
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers and job children left behind, if any
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def service(tmp_path_factory, module_database_url):
    """The module's running service (one worker)."""
    service = start_service(tmp_path_factory.mktemp("service") / "home", module_database_url)
    yield service
    stop_service(service)


@pytest.fixture(autouse=True)
def database_url(module_database_url):
    """Service tests share their module's database with the module's server."""
    return module_database_url


class InProcessServer:
    """The app under uvicorn in a thread of the test process (no workers): for settings variants."""

    def __init__(self, settings):
        self.settings = settings

    def __enter__(self) -> str:
        import uvicorn

        from genaug.service.app import create_app

        for _ in range(PORT_ATTEMPTS):  # a port taken between free_port and the bind: another one
            self.port = free_port()
            self.server = uvicorn.Server(uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port,
                                                        log_level="warning"))
            self.thread = threading.Thread(target=self.server.run, daemon=True)
            self.thread.start()
            deadline = time.monotonic() + 60
            while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.server.started:
                wait_healthy(f"http://127.0.0.1:{self.port}", None, None, timeout=30)
                return f"http://127.0.0.1:{self.port}"
            if self.thread.is_alive():
                raise RuntimeError(f"the in-process server on port {self.port} did not start within 60 s")
        raise RuntimeError(f"the in-process server stopped at start-up {PORT_ATTEMPTS} times (a port taken each time, "
                           "or an error at start-up: see uvicorn's lines above)")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def chromium() -> str:
    """The system chromium for the browser tests (skipped, or failed in CI, without one)."""
    from _browser import chromium_executable

    return chromium_executable()


@pytest.fixture
def browser_service(tmp_path, chromium, module_database_url):
    """A service of the test's own for a browser to drive (chromium checked first)."""
    from _browser import run_service

    yield from run_service(tmp_path, module_database_url)
