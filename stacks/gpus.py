"""The GPU models the platform knows, with the facts the bootstrap and labels need.

The article's cards are Maxwell and Pascal consumer GPUs. NVIDIA's R580 driver branch is
the last one that supports Maxwell, Pascal and Volta, so those nodes stay on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GpuModelInfo:
    """Static facts about one GPU model."""

    product: str  # as nvidia-smi names it
    architecture: str
    memory_mib: int
    driver_branch: str  # Ubuntu packages nvidia-headless-<branch>, nvidia-utils-<branch>
    # PCI functions of one card: VGA (.0) and HDMI audio (.1). They share an IOMMU group, and
    # QEMU refuses to start a VM unless every device of the group is assigned ("group N is not
    # viable"), so a VM gets all of them. (Turing cards with USB-C would have 4.)
    pci_functions: int


GpuModel = Literal[
    "gtx-750-ti",
    "gtx-970",
    "gtx-980-ti",
    "gtx-1050-ti",
    "gtx-1060",
    "gtx-1070",
    "gtx-1080",
    "rtx-3090",
    "rtx-4090",
]

GPU_MODELS: dict[str, GpuModelInfo] = {
    "gtx-750-ti": GpuModelInfo("NVIDIA GeForce GTX 750 Ti", "maxwell", 2048, "580", pci_functions=2),
    "gtx-970": GpuModelInfo("NVIDIA GeForce GTX 970", "maxwell", 4096, "580", pci_functions=2),
    "gtx-980-ti": GpuModelInfo("NVIDIA GeForce GTX 980 Ti", "maxwell", 6144, "580", pci_functions=2),
    "gtx-1050-ti": GpuModelInfo("NVIDIA GeForce GTX 1050 Ti", "pascal", 4096, "580", pci_functions=2),
    "gtx-1060": GpuModelInfo("NVIDIA GeForce GTX 1060 6GB", "pascal", 6144, "580", pci_functions=2),
    "gtx-1070": GpuModelInfo("NVIDIA GeForce GTX 1070", "pascal", 8192, "580", pci_functions=2),
    "gtx-1080": GpuModelInfo("NVIDIA GeForce GTX 1080", "pascal", 8192, "580", pci_functions=2),
    "rtx-3090": GpuModelInfo("NVIDIA GeForce RTX 3090", "ampere", 24576, "580", pci_functions=2),
    "rtx-4090": GpuModelInfo("NVIDIA GeForce RTX 4090", "ada", 24576, "580", pci_functions=2),
}
