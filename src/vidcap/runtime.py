"""How this process computes: numeric precision, torch threads, and what the hardware runs natively.

Precision. `auto` (the default of every preset and of inference) means bf16 only where the
hardware computes it natively, fp32 elsewhere:

- CUDA: bf16 when the GPU has it natively (compute capability 8.0 and later), else fp32. fp16
  (with a gradient scaler in training) only when asked for, and only on CUDA.
- CPU: bf16 when the CPU has AMX-BF16 or AVX512-BF16 *and* this process may use it, else fp32.
  Without those instructions every bf16 operation is emulated (converted to fp32 and back around
  each kernel): a shapes-tiny align step measured 11-17 times slower than fp32 on an AVX2 CPU.
  "May use it": PyTorch's own kernels follow `ATEN_CPU_CAPABILITY` and oneDNN's matrix products
  follow `ONEDNN_MAX_CPU_ISA` (or `DNNL_MAX_CPU_ISA`); either one capped below AVX-512 BF16 — as
  `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` does to run a machine as an AVX2 one — makes
  `auto` choose fp32.

`choose_precision(requested, device_type, capability)` is the decision, a pure function of a
`Capability` (what `detect_capability` finds, or what a test injects); `resolve_precision` applies
it to this machine. `autocast` turns a chosen precision into the context the model runs under.

Threads. torch's intra-op threads are set once, by the command line, before work starts
(`set_threads`); library functions use what they are given. The default is `OMP_NUM_THREADS`
when set, else the physical cores this process may run on (`physical_cores`: hyper-threads, which
give torch nothing, and cores outside the affinity mask or the cgroup's CPU quota do not count),
divided among processes that run side by side (ablation jobs, torchrun's processes on one
machine); DataLoader workers run one thread each (PyTorch sets that), and so does nothing else
need: METEOR's Java process works while torch waits.

This module sits with the other low-level helpers (below the model, the data and captioning, which
all run under its decisions) and imports torch only inside the functions that need it, so the
command line can read its constants without paying for torch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""What a user may ask for (`train.precision`, `--precision`)."""

NATIVE_CPU_BF16 = ("AMX_BF16", "AVX512_BF16")
"""`Capability.cpu` values that compute bf16 natively."""

# oneDNN's CPU ISA names (ONEDNN_MAX_CPU_ISA) and their bit masks (dnnl_cpu_isa_t): an ISA
# includes another when its mask holds all of the other's bits.
_ONEDNN_ISA = {
    "SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
    "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
    "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF,
    "AVX10_1_512_AMX": 0xFEF, "AVX512_CORE_AMX": 0xFEF,
    "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF,
}
_ONEDNN_BF16, _ONEDNN_AMX = 0xE7, 0xFEF


@dataclass(frozen=True)
class Capability:
    """What this process can compute natively."""

    cpu: str
    """The CPU's vector instructions as this process may use them: `AMX_BF16` or `AVX512_BF16`
    (native bf16), else PyTorch's own name (`AVX512`, `AVX2`, `DEFAULT`, ...)."""
    cuda_bf16: bool = False
    """The CUDA device computes bf16 natively."""
    cuda_name: str | None = None
    """The CUDA device's name (None: no CUDA device was looked at)."""

    @property
    def cpu_bf16(self) -> bool:
        return self.cpu in NATIVE_CPU_BF16


def choose_precision(requested: str, device_type: str, capability: Capability
                     ) -> tuple[str, str]:
    """(fp32 | bf16 | fp16, why) for `requested` (auto | fp32 | bf16 | fp16) on a device type
    (`cpu` or `cuda`) with `capability`. Never raises for a known request: fp16 away from CUDA
    runs as fp32 (PyTorch's CPU kernels have no fast fp16 path), and bf16 asked for on hardware
    without it is honoured, with a reason that says what it costs."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r} (one of {', '.join(PRECISIONS)})")
    cuda = device_type == "cuda"
    where = (f"CUDA device {capability.cuda_name or ''}".rstrip() if cuda
             else f"CPU {capability.cpu}")
    native = capability.cuda_bf16 if cuda else capability.cpu_bf16
    if requested == "fp32":
        return "fp32", "asked for"
    if requested == "fp16":
        if cuda:
            return "fp16", "asked for (CUDA, with a gradient scaler in training)"
        return "fp32", "fp16 was asked for, but it runs only on CUDA: fp32 on the CPU"
    if requested == "bf16":
        if native:
            return "bf16", f"asked for; {where} computes bf16 natively"
        return "bf16", (f"asked for, but {where} has no native bf16: every bf16 operation is "
                        "emulated, many times slower than fp32 (auto would choose fp32)")
    if native:
        return "bf16", f"auto: {where} computes bf16 natively"
    return "fp32", (f"auto: {where} has no native bf16 (emulated bf16 is many times slower "
                    "than fp32)")


def resolve_precision(requested: str, device: Any = "cpu") -> tuple[str, str]:
    """`choose_precision` on this machine: `device` is a torch.device or its name."""
    device_type = _device_type(device)
    return choose_precision(requested, device_type, detect_capability(device_type))


def emulated_bf16(precision: str, device: Any = "cpu") -> bool:
    """Whether `precision` (a chosen one) is bf16 on a device that only emulates it."""
    if precision != "bf16":
        return False
    device_type = _device_type(device)
    capability = detect_capability(device_type)
    return not (capability.cuda_bf16 if device_type == "cuda" else capability.cpu_bf16)


def _device_type(device: Any) -> str:
    """`cpu` / `cuda` of a torch.device or a name such as `cuda:1`."""
    return getattr(device, "type", None) or str(device).split(":")[0]


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The context a model runs under for a chosen precision: bf16 or fp16 autocast (fp16 on
    CUDA only), or nothing for fp32."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"autocast takes a chosen precision (fp32, bf16, fp16), not "
                         f"{precision!r}: resolve `auto` first (resolve_precision)")
    import torch

    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision == "fp16" and device_type == "cuda":
        return torch.autocast(device_type, dtype=torch.float16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------
# what the hardware runs natively


def detect_capability(device_type: str = "cpu") -> Capability:
    """This process's `Capability` (the CUDA fields only when `device_type` is `cuda`)."""
    cpu = cpu_capability()
    if device_type != "cuda":
        return Capability(cpu=cpu)
    import torch

    if not torch.cuda.is_available():
        return Capability(cpu=cpu)
    return Capability(cpu=cpu, cuda_bf16=torch.cuda.is_bf16_supported(including_emulation=False),
                      cuda_name=torch.cuda.get_device_name())


@functools.lru_cache(maxsize=None)
def cpu_capability() -> str:
    """`AMX_BF16`, `AVX512_BF16`, or PyTorch's CPU capability (`AVX512`, `AVX2`, ...): the best
    bf16 the CPU has that neither `ATEN_CPU_CAPABILITY` nor oneDNN's ISA cap rules out."""
    import torch

    aten = torch.backends.cpu.get_cpu_capability()
    return capability_from(aten, cpu_flags(), onednn_max_isa())


def capability_from(aten: str, flags: Iterable[str], onednn_isa: str | None) -> str:
    """The `Capability.cpu` of PyTorch's capability name, the CPU's flags (/proc/cpuinfo names)
    and oneDNN's ISA cap (None: none). A CPU with bf16 instructions that a cap keeps this process
    from using is named with the cap, e.g. `AVX2 (capped; the CPU has avx512_bf16)`."""
    bf16 = sorted({"amx_bf16", "avx512_bf16"} & set(flags))
    if not bf16:
        return aten
    if not aten.upper().startswith("AVX512"):  # ATEN_CPU_CAPABILITY below AVX-512
        return f"{aten} (capped; the CPU has {' and '.join(bf16)})"
    mask = _ONEDNN_ISA.get((onednn_isa or "").upper())
    if "amx_bf16" in bf16 and (mask is None or mask & _ONEDNN_AMX == _ONEDNN_AMX):
        return "AMX_BF16"
    if mask is None or mask & _ONEDNN_BF16 == _ONEDNN_BF16:
        return "AVX512_BF16"
    return f"{aten} (oneDNN capped at {onednn_isa}; the CPU has {' and '.join(bf16)})"


def onednn_max_isa() -> str | None:
    """The ISA cap a user set for oneDNN (`ONEDNN_MAX_CPU_ISA`, or its old name
    `DNNL_MAX_CPU_ISA`); None when unset or `ALL`/`DEFAULT`."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if not value or value.upper() in ("ALL", "DEFAULT"):
        return None
    return value.upper()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags, /proc/cpuinfo's names; where that file is missing (not Linux),
    the bf16 ones PyTorch's cpuinfo reports."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    import torch

    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return frozenset(flag for flag, name in probes.items()
                     if getattr(torch.cpu, name, lambda: False)())


# ---------------------------------------------------------------------------------------------
# threads


def physical_cores(root: Path = Path("/"), cpus: Iterable[int] | None = None) -> int:
    """Physical cores this process may run on: the CPUs of its affinity mask (`cpus`) counted
    once per core (hyper-threads share one), capped by the cgroup's CPU quota. `root` is where
    /sys is looked for (tests give a fake one)."""
    if cpus is None:
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cpus = range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        siblings = root / f"sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    quota = cgroup_cpu_quota(root)
    count = len(cores) if quota is None else min(len(cores), quota)
    return max(1, count)


def cgroup_cpu_quota(root: Path = Path("/")) -> int | None:
    """The CPUs a cgroup CPU quota allows (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), rounded up;
    None when there is no quota."""
    try:
        quota, period = (root / "sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
            period = (root / "sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not quota.lstrip("-").isdigit() or not period.isdigit():
        return None
    return max(1, math.ceil(int(quota) / max(1, int(period))))


def passive_openmp_wait(threads: int | None = None, load: float | None = None) -> bool:
    """Let PyTorch's OpenMP threads sleep, not spin, while they wait for each other when this
    machine is busy; whether it did. Read once, when torch loads, so call it before.

    The choice is made at start: passive when other work holds cores this process's `threads`
    (default: `default_threads()`) would need, that is when the 1-minute load average (`load`,
    default `os.getloadavg()`) is more than the physical cores minus `threads`, plus half a core;
    OpenMP's own spinning otherwise. Either way is costly in the other case (BENCHMARKS.md,
    Threads): a spinning thread whose partner's core is taken holds up every operation (on 2
    shared cores, greedy captioning with 2 threads ran 10 times slower than with 1), and a
    sleeping one wakes late on a quiet machine (there, passive align steps took 1.5 times as
    long, caption steps and generation about twice). The user's `OMP_WAIT_POLICY` always wins."""
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - no load average on this system
            return False
    wanted = default_threads() if threads is None else threads
    if load > physical_cores() - wanted + 0.5:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return True
    return False


def default_threads(processes: int | None = None) -> int:
    """torch threads for one of `processes` side-by-side processes (None: the processes torchrun
    started on this machine, `LOCAL_WORLD_SIZE`, else 1): `OMP_NUM_THREADS` when the user set
    it, else the physical cores shared out, at least one."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) >= 1:
        return int(omp)
    if processes is None:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, physical_cores() // max(1, processes))


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (None: `default_threads()`); returns the number set."""
    import torch

    count = default_threads() if threads is None else threads
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    torch.set_num_threads(count)
    return count
