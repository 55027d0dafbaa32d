"""Precision and threads: what `auto` chooses for which hardware (injected, so the answers do not
depend on this machine), how the CPU's capability is read, and how many threads a process gets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidcap import runtime
from vidcap.runtime import Capability, capability_from, choose_precision

AVX2 = Capability(cpu="AVX2")
AVX512 = Capability(cpu="AVX512")
AVX512_BF16 = Capability(cpu="AVX512_BF16")
AMX = Capability(cpu="AMX_BF16")
AMPERE = Capability(cpu="AVX2", cuda_bf16=True, cuda_name="NVIDIA A100")
TURING = Capability(cpu="AVX2", cuda_bf16=False, cuda_name="Tesla T4")


@pytest.mark.parametrize("capability, expected", [
    (AVX2, "fp32"), (AVX512, "fp32"), (Capability(cpu="DEFAULT"), "fp32"),
    (AVX512_BF16, "bf16"), (AMX, "bf16"),
])
def test_auto_on_a_cpu_is_bf16_only_where_it_is_native(capability, expected):
    precision, reason = choose_precision("auto", "cpu", capability)
    assert precision == expected
    assert capability.cpu in reason


def test_auto_on_cuda_follows_the_gpu_not_the_cpu():
    assert choose_precision("auto", "cuda", AMPERE)[0] == "bf16"
    assert choose_precision("auto", "cuda", TURING)[0] == "fp32"
    # a CPU with native bf16 does not make a GPU without it choose bf16
    assert choose_precision("auto", "cuda", Capability(cpu="AMX_BF16"))[0] == "fp32"
    assert "T4" in choose_precision("auto", "cuda", TURING)[1]


def test_fp16_runs_only_on_cuda_and_never_by_default():
    assert choose_precision("fp16", "cuda", TURING)[0] == "fp16"
    precision, reason = choose_precision("fp16", "cpu", AMX)
    assert precision == "fp32" and "CUDA" in reason
    assert all(choose_precision("auto", device, cap)[0] != "fp16"
               for device in ("cpu", "cuda") for cap in (AVX2, AMX, AMPERE, TURING))


def test_what_is_asked_for_is_honoured_with_the_cost_said():
    assert choose_precision("fp32", "cpu", AMX) == ("fp32", "asked for")
    precision, reason = choose_precision("bf16", "cpu", AVX2)
    assert precision == "bf16" and "emulated" in reason and "auto would choose fp32" in reason
    assert "emulated" not in choose_precision("bf16", "cpu", AMX)[1]
    with pytest.raises(ValueError, match="fp64"):
        choose_precision("fp64", "cpu", AVX2)


@pytest.mark.parametrize("aten, flags, onednn, expected", [
    ("AVX2", {"avx2", "fma"}, None, "AVX2"),                                  # an AVX2 machine
    ("AVX512", {"avx512f", "avx512bw"}, None, "AVX512"),                      # AVX-512, no bf16
    ("AVX512", {"avx512f", "avx512_bf16"}, None, "AVX512_BF16"),              # Cooper Lake, Zen 4
    ("AVX512", {"avx512_bf16", "amx_bf16", "amx_tile"}, None, "AMX_BF16"),    # Sapphire Rapids
    ("AVX512", {"avx512_bf16", "amx_bf16"}, "AVX512_CORE_BF16", "AVX512_BF16"),
    ("AVX512", {"avx512_bf16", "amx_bf16"}, "avx10_1_512_amx", "AMX_BF16"),
])
def test_the_cpu_capability_names_native_bf16_only_when_usable(aten, flags, onednn, expected):
    assert capability_from(aten, flags, onednn) == expected


@pytest.mark.parametrize("aten, onednn", [
    ("AVX2", None),               # ATEN_CPU_CAPABILITY=avx2 on a bf16 CPU
    ("AVX512", "AVX2"),           # ONEDNN_MAX_CPU_ISA=AVX2: oneDNN's matrix products emulate
    ("AVX512", "AVX512_CORE"),    # AVX-512 without its bf16 instructions
])
def test_a_capped_bf16_cpu_is_not_native(aten, onednn):
    capability = capability_from(aten, {"avx512_bf16", "amx_bf16"}, onednn)
    assert capability not in runtime.NATIVE_CPU_BF16
    assert "capped" in capability and "avx512_bf16" in capability
    assert choose_precision("auto", "cpu", Capability(cpu=capability))[0] == "fp32"


def test_onednn_cap_is_read_from_either_variable(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert runtime.onednn_max_isa() is None
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "avx2")
    assert runtime.onednn_max_isa() == "AVX2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert runtime.onednn_max_isa() is None


def test_cpu_flags_come_from_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma\n\n")
    assert runtime.cpu_flags(cpuinfo) == {"fpu", "sse", "avx2", "fma"}


def test_the_avx2_emulation_variables_make_auto_choose_fp32():
    """The variables COMMON.md gives for running as an AVX2 machine, in a fresh process (they
    are read when torch loads): fp32 whatever this machine's CPU is."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = ("from vidcap.runtime import resolve_precision, cpu_capability; "
            "print(resolve_precision('auto', 'cpu')[0], cpu_capability())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    precision, capability = done.stdout.split(maxsplit=1)
    assert precision == "fp32" and capability.startswith("AVX2")


def test_autocast_runs_the_chosen_precision():
    with runtime.autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with runtime.autocast("fp32", "cpu"), runtime.autocast("fp16", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="resolve"):
        runtime.autocast("auto", "cpu")


def _fake_sys(root: Path, siblings: list[str], cpu_max: str | None = None) -> Path:
    for cpu, text in enumerate(siblings):
        topology = root / f"sys/devices/system/cpu/cpu{cpu}/topology"
        topology.mkdir(parents=True)
        (topology / "thread_siblings_list").write_text(text + "\n")
    if cpu_max is not None:
        (root / "sys/fs/cgroup").mkdir(parents=True)
        (root / "sys/fs/cgroup/cpu.max").write_text(cpu_max + "\n")
    return root


def test_physical_cores_count_hyperthreads_once(tmp_path: Path):
    root = _fake_sys(tmp_path, ["0,2", "1,3", "0,2", "1,3"])  # 2 cores x 2 threads
    assert runtime.physical_cores(root, cpus=[0, 1, 2, 3]) == 2
    assert runtime.physical_cores(root, cpus=[0, 2]) == 1  # affinity: one core's two threads


def test_physical_cores_respect_the_cgroup_quota(tmp_path: Path):
    root = _fake_sys(tmp_path, ["0", "1", "2", "3"], cpu_max="150000 100000")
    assert runtime.physical_cores(root, cpus=range(4)) == 2  # 1.5 CPUs, rounded up
    (root / "sys/fs/cgroup/cpu.max").write_text("max 100000\n")
    assert runtime.physical_cores(root, cpus=range(4)) == 4


def test_default_threads_share_the_cores_and_honour_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "physical_cores", lambda: 8)
    assert runtime.default_threads(1) == 8
    assert runtime.default_threads(3) == 2
    assert runtime.default_threads(16) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun --nproc_per_node 4
    assert runtime.default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.default_threads() == 3


def test_set_threads_sets_torch(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "physical_cores", lambda: 1)
    assert runtime.set_threads(2) == 2 and torch.get_num_threads() == 2
    assert runtime.set_threads() == 1 and torch.get_num_threads() == 1
    with pytest.raises(ValueError):
        runtime.set_threads(0)


def test_openmp_threads_wait_passively_on_a_busy_machine_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(runtime, "physical_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for load, threads, passive in ((0.1, None, False), (0.7, None, True), (1.4, 1, False),
                                   (1.6, 1, True), (3.0, 2, True)):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        assert runtime.passive_openmp_wait(threads, load=load) is passive, (load, threads)
        assert os.environ.get("OMP_WAIT_POLICY") == ("PASSIVE" if passive else None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert runtime.passive_openmp_wait(2, load=9.0) is False
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
