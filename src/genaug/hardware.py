"""Which CPU computed a number.

Float arithmetic is not the same on every CPU: PyTorch's CPU kernels (oneDNN, and the vector
width or matrix units they pick) sum in other orders on another processor, so a seeded cell
recomputed on another kind of CPU can differ in its last digits (a few test predictions). Cells
and benchmark results record the CPU that made them, so a report can say when its cells come
from more than one.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; empty where there is none (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


@functools.lru_cache(maxsize=1)
def cpu_description() -> str:
    """One line naming this CPU and the kernels PyTorch picks on it, e.g.
    ``"Intel(R) Xeon(R) Processor; torch AVX512; AMX"`` (where /proc/cpuinfo names no model, as on
    ARM Linux, the machine type stands in: ``"aarch64; torch ..."``)."""
    import torch

    model, flags = _cpuinfo()
    parts = [model or platform.processor() or platform.machine() or "unknown CPU"]
    try:
        parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    except Exception:  # older torch builds have no capability query: the model name still tells
        pass
    if "amx_bf16" in flags:  # matrix units: bf16 kernels (lite0-linear's bf16 features) differ with them
        parts.append("AMX")
    return "; ".join(parts)
