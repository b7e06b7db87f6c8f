"""What a response may say about this server: nothing about its paths, host, processes or code.

Reads are open by default, so anyone who can reach the port sees job logs, errors and model
details. Those texts come from workers and libraries that name files, hosts and processes
freely; ``public_text`` rewrites them before they leave: the genaug home becomes
``$GENAUG_HOME``, other absolute paths keep only their last part, worker names (host:pid:id)
become ``worker-<id>``, process ids and the host name disappear. Tracebacks never leave at
all: they are in the server log, and admins read them with ``GET /api/jobs/{id}/traceback``.
"""
from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

from ..jobs.table import public_worker  # noqa: F401  (re-exported: the service's one place for it)

_WORKER_NAME = re.compile(r"\b[\w.-]+:\d+:([0-9a-f]{6})\b")
_PID = re.compile(r"\b(?:process\s+)?(?:pid|PID)\s+\d+\b")
# An absolute POSIX path of two or more parts (not a URL path such as /api/jobs: see below).
_ABSOLUTE_PATH = re.compile(r"(?<![\w/.:~$-])/(?:[^\s/'\"(),;:<>|]+/)+[^\s/'\"(),;:<>|]*")
_URL_PREFIXES = ("/api/", "/static/", "/docs")


def public_text(text: str | None, home: Path | None = None) -> str | None:
    """``text`` with server paths, worker names, process ids and the host name taken out."""
    if not text:
        return text
    if home is not None:
        for prefix in {str(home), str(Path(home).resolve())}:
            text = text.replace(prefix, "$GENAUG_HOME")
    text = _WORKER_NAME.sub(lambda m: f"worker-{m.group(1)}", text)
    text = _ABSOLUTE_PATH.sub(_shorten_path, text)
    text = _PID.sub("process", text)
    host = socket.gethostname()
    if host:
        text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", "this server", text)
    return text


def _shorten_path(match: re.Match) -> str:
    path = match.group(0)
    if path.startswith(_URL_PREFIXES):
        return path
    return Path(path).name or "(path)"


def public_tree(value: Any, home: Path | None = None) -> Any:
    """``public_text`` applied to every string in a JSON-like value."""
    if isinstance(value, str):
        return public_text(value, home)
    if isinstance(value, dict):
        return {key: public_tree(item, home) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_tree(item, home) for item in value]
    return value
