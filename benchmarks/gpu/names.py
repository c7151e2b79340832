"""Workload and size names, without torch, so the Job builder can be imported by the Pulumi
program and its tests where torch is not installed."""

from __future__ import annotations

from typing import Literal, get_args

Workload = Literal["image-cnn", "char-cnn"]
Size = Literal["tiny", "standard"]
WORKLOADS: tuple[Workload, ...] = get_args(Workload)
SIZES: tuple[Size, ...] = get_args(Size)
