"""The EC2 GPU instance types the burst group may use, with what the platform needs to
know about each: GPUs (for node-template tags and price per GPU-hour), the generation (one
launch template each), the Ubuntu release and NVIDIA driver branch that still support it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Generation = Literal["kepler", "volta", "turing", "ampere", "ada"]
Family = tuple[str, str, str, Generation]  # AWS GPU name, model label, accelerator label, generation


@dataclass(frozen=True)
class InstanceType:
    gpus: int
    gpu: str  # as AWS names it (DescribeInstanceTypes: Manufacturer + Name)
    gpu_model: str  # label value, like the on-prem akiba.io/gpu-model
    accelerator: str  # k8s.amazonaws.com/accelerator label (the cluster-autoscaler GPU label)
    generation: Generation
    vcpus: int
    memory_gib: float

    @property
    def ubuntu(self) -> Literal["jammy", "noble"]:
        # Kepler (GRID K520) needs the R470 driver, the last branch that supports it; Ubuntu
        # 22.04 is the last release that packages it. Current CUDA no longer runs there.
        return "jammy" if self.generation == "kepler" else "noble"

    @property
    def driver_branch(self) -> str:
        return "470" if self.generation == "kepler" else "580"


_K520: Family = ("NVIDIA GRID K520", "grid-k520", "nvidia-grid-k520", "kepler")
_V100: Family = ("NVIDIA V100", "tesla-v100", "nvidia-tesla-v100", "volta")
_T4: Family = ("NVIDIA T4", "tesla-t4", "nvidia-tesla-t4", "turing")
_A10G: Family = ("NVIDIA A10G", "a10g", "nvidia-a10g", "ampere")
_L4: Family = ("NVIDIA L4", "l4", "nvidia-l4", "ada")

# Sources: the EC2 instance type pages and DescribeInstanceTypes (tests/test_spot_prices.py
# checks the g4dn/g5/g6 rows against the copy moto ships; g2 and p3 are previous generation).
# The 16xlarge sizes have ONE GPU, more CPU than the 12xlarge.
INSTANCE_TYPES: dict[str, InstanceType] = {
    # g2.2xlarge exposes one GK104 of the two-GPU K520 board; g2.8xlarge exposes four.
    "g2.2xlarge": InstanceType(1, *_K520, vcpus=8, memory_gib=15),
    "g2.8xlarge": InstanceType(4, *_K520, vcpus=32, memory_gib=60),
    "p3.2xlarge": InstanceType(1, *_V100, vcpus=8, memory_gib=61),
    "g4dn.xlarge": InstanceType(1, *_T4, vcpus=4, memory_gib=16),
    "g4dn.2xlarge": InstanceType(1, *_T4, vcpus=8, memory_gib=32),
    "g4dn.4xlarge": InstanceType(1, *_T4, vcpus=16, memory_gib=64),
    "g4dn.8xlarge": InstanceType(1, *_T4, vcpus=32, memory_gib=128),
    "g4dn.12xlarge": InstanceType(4, *_T4, vcpus=48, memory_gib=192),
    "g4dn.16xlarge": InstanceType(1, *_T4, vcpus=64, memory_gib=256),
    "g5.xlarge": InstanceType(1, *_A10G, vcpus=4, memory_gib=16),
    "g5.2xlarge": InstanceType(1, *_A10G, vcpus=8, memory_gib=32),
    "g5.4xlarge": InstanceType(1, *_A10G, vcpus=16, memory_gib=64),
    "g5.8xlarge": InstanceType(1, *_A10G, vcpus=32, memory_gib=128),
    "g5.12xlarge": InstanceType(4, *_A10G, vcpus=48, memory_gib=192),
    "g5.16xlarge": InstanceType(1, *_A10G, vcpus=64, memory_gib=256),
    "g6.xlarge": InstanceType(1, *_L4, vcpus=4, memory_gib=16),
    "g6.2xlarge": InstanceType(1, *_L4, vcpus=8, memory_gib=32),
    "g6.4xlarge": InstanceType(1, *_L4, vcpus=16, memory_gib=64),
    "g6.8xlarge": InstanceType(1, *_L4, vcpus=32, memory_gib=128),
    "g6.12xlarge": InstanceType(4, *_L4, vcpus=48, memory_gib=192),
    "g6.16xlarge": InstanceType(1, *_L4, vcpus=64, memory_gib=256),
}
