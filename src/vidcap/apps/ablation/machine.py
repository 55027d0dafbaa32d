"""What an ablation grid ran on: cores, CPU, torch threads, device (recorded in results.json)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def torch_threads() -> int:
    """torch's intra-op threads in this process."""
    import torch

    return torch.get_num_threads()


def machine_info(threads: int, jobs: int, device: str) -> dict[str, Any]:
    """Cores, CPU model, threads per job, jobs, device, torch and Python versions (and GPU)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cores": usable_cores(), "cpu": cpu, "torch_threads": threads, "jobs": jobs,
            "device": device, "torch": torch.__version__, "python": platform.python_version()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
