"""The one module that talks to NVML (nvidia-ml-py, `import pynvml`): the board's power, its
energy counter and the driver version, for the CUDA device torch runs on.

NVML numbers devices its own way (CUDA_VISIBLE_DEVICES does not apply to it), so the device is
found by the UUID torch reports; with one GPU visible (a Kubernetes pod) index 0 is that GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any


class NvmlUnavailableError(Exception):
    """NVML cannot measure this device; the message is the reason recorded with the result."""


def _pynvml() -> ModuleType:
    try:
        import pynvml  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise NvmlUnavailableError("nvidia-ml-py (pynvml) is not installed") from exc
    return pynvml  # type: ignore[no-any-return,unused-ignore]


@dataclass
class NvmlDevice:
    handle: Any  # pynvml's ctypes handle
    driver_version: str
    _nvml: ModuleType

    def read_watts(self) -> float:
        # nvmlDeviceGetPowerUsage is in mW. From Ampere on (except GA100) it is a 1 s average,
        # so runs of a few seconds or more are needed for the mean to mean much.
        return float(self._nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1000.0

    def energy_mj(self) -> float | None:
        """The board's energy counter since the driver loaded (mJ); None where unsupported (pre-Volta)."""
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self._nvml.NVMLError:
            return None

    def close(self) -> None:
        self._nvml.nvmlShutdown()


def open_device(torch_uuid: str | None) -> NvmlDevice:
    """NVML's handle for the device torch calls `torch_uuid`; raises NvmlUnavailableError with the reason."""
    nvml = _pynvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise NvmlUnavailableError(f"NVML did not start: {exc}") from exc
    try:
        handle = _find(nvml, torch_uuid)
        nvml.nvmlDeviceGetPowerUsage(handle)  # fail here, not halfway through the timed part
        return NvmlDevice(handle, str(nvml.nvmlSystemGetDriverVersion()), nvml)
    except (nvml.NVMLError, NvmlUnavailableError) as exc:
        nvml.nvmlShutdown()
        if isinstance(exc, NvmlUnavailableError):
            raise
        raise NvmlUnavailableError(f"NVML cannot read this GPU's power: {exc}") from exc


def _find(nvml: ModuleType, torch_uuid: str | None) -> Any:
    if torch_uuid:
        uuid = torch_uuid if torch_uuid.startswith("GPU-") else f"GPU-{torch_uuid}"
        try:
            return nvml.nvmlDeviceGetHandleByUUID(uuid)
        except nvml.NVMLError:
            pass  # fall through to the single-device case
    if nvml.nvmlDeviceGetCount() == 1:
        return nvml.nvmlDeviceGetHandleByIndex(0)
    raise NvmlUnavailableError("cannot tell which NVML device torch is using (no UUID match, several GPUs)")
