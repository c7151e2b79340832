"""Which GPU model a device is: torch's device name -> the platform's model slug, and the
order the report lists models in.

The slugs are the values of the node label `akiba.io/gpu-model` (stacks/gpus.py) plus the
cloud machines the benchmark may run on, so a result, a price and a node speak of the same key.
"""

from __future__ import annotations

import re

from stacks.gpus import GPU_MODELS

# torch.cuda.get_device_name() -> slug. Drivers before R470 named the cards without "NVIDIA ",
# so names are matched with that prefix removed and case folded.
DEVICE_SLUGS: dict[str, str] = {
    "geforce gtx 750 ti": "gtx-750-ti",
    "geforce gtx 970": "gtx-970",
    "geforce gtx 980 ti": "gtx-980-ti",
    "geforce gtx 1050 ti": "gtx-1050-ti",
    "geforce gtx 1060 6gb": "gtx-1060",
    "geforce gtx 1060 3gb": "gtx-1060",
    "geforce gtx 1060": "gtx-1060",
    "geforce gtx 1070": "gtx-1070",
    "geforce gtx 1080": "gtx-1080",
    "geforce rtx 3090": "rtx-3090",
    "geforce rtx 4090": "rtx-4090",
    # Cloud GPUs are priced per machine, so they map to the machine the platform rents them in.
    "grid k520": "g2.2xlarge",
    "tesla t4": "g4dn.xlarge",
    "h100 80gb hbm3": "h100",
    "h100 pcie": "h100",
    "h100 nvl": "h100",
    "h200": "h200",
}

CPU_SLUG = "cpu"

# The article's charts list the cards by model number (750 Ti ... 1080); newer cards, the cloud
# machines and the CPU follow. Models not named here come last, alphabetically.
MODEL_ORDER: tuple[str, ...] = (
    *GPU_MODELS,  # the platform's catalogue is already in that order
    "g2.2xlarge",
    "g4dn.xlarge",
    "h100",
    "h200",
    CPU_SLUG,
)


def _normalise(name: str) -> str:
    name = " ".join(name.split()).casefold()
    return name.removeprefix("nvidia ")


def fallback_slug(name: str) -> str:
    """A slug for a device the table does not know: its name, lower case, dashes for the rest."""
    return re.sub(r"[^a-z0-9.]+", "-", _normalise(name)).strip("-") or "unknown"


def slug_for(device_name: str) -> str:
    """The platform's model slug for a torch device name ("NVIDIA GeForce GTX 1080" -> "gtx-1080")."""
    return DEVICE_SLUGS.get(_normalise(device_name), fallback_slug(device_name))


def is_known(device_name: str) -> bool:
    return _normalise(device_name) in DEVICE_SLUGS


def model_sort_key(slug: str) -> tuple[int, str]:
    try:
        return (MODEL_ORDER.index(slug), "")
    except ValueError:
        return (len(MODEL_ORDER), slug)


def _arch_number(arch: str) -> int | None:
    match = re.fullmatch(r"(sm|compute)_(\d+)[a-z]?", arch)
    return int(match.group(2)) if match else None


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch build compiled for `arch_list` (torch.cuda.get_arch_list()) has kernels for
    a device of this compute capability: a cubin of the same major and no newer minor, or PTX
    (compute_XY) no newer than the device, which the driver compiles."""
    device = capability[0] * 10 + capability[1]
    for arch in arch_list:
        number = _arch_number(arch)
        if number is None or number > device:
            continue
        if arch.startswith("compute_") or number // 10 == capability[0]:
            return True
    return False
