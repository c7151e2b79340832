"""A training loop that survives preemption: it checkpoints to the engineer's home and resumes.

The convention (README "Preemptible work"):
- state lives in $HOME/checkpoints/<job name>/state.json; the home is the engineer's CephFS
  volume, mounted wherever the pod lands, so the next pod finds it on any node;
- a checkpoint is written atomically (a temporary file in the same directory, fsync, rename,
  fsync of the directory): a pod killed mid-write leaves the previous checkpoint, never half of one;
- every K steps, and on SIGTERM: Kubernetes sends SIGTERM when it preempts or drains the pod,
  then waits terminationGracePeriodSeconds before SIGKILL;
- on SIGTERM it exits 143 (128 + SIGTERM), never 0: with restartPolicy Never a pod that exits 0
  has *succeeded*, and the Job would be complete with the training half done;
- on start it resumes from the checkpoint if there is one.

Pure Python (no numpy) so that it runs anywhere; the "model" is one weight fitted to a fixed
sequence, so an interrupted run and an uninterrupted one end with the same numbers. Replace
`train_step` and the state with your own (e.g. torch.save of the model and optimiser to the same
temporary-file-then-rename pattern).

    python3 train.py --steps 1000 --every 10 [--name my-run] [--step-seconds 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

PREEMPTED_EXIT = 128 + signal.SIGTERM  # 143: what a shell reports for a process ended by SIGTERM
USAGE_EXIT = 2  # argparse's: the Job's podFailurePolicy fails the Job at once, retrying cannot help


def checkpoint_path(name: str) -> Path:
    return Path(os.environ["HOME"]) / "checkpoints" / name / "state.json"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write the state so that a reader sees either the old checkpoint or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic within one directory, on CephFS too
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def load(path: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return state


def initial_state(steps: int) -> dict[str, Any]:
    return {"step": 0, "steps": steps, "weight": 0.0, "loss": 0.0}


def train_step(state: dict[str, Any]) -> None:
    """One step of SGD on a squared error: deterministic, so a resumed run ends where an
    uninterrupted one does."""
    step = int(state["step"])
    target = ((step * 7919) % 1000) / 1000.0
    error = float(state["weight"]) - target
    state["weight"] = float(state["weight"]) - 0.01 * 2 * error
    state["loss"] = float(state["loss"]) + error * error
    state["step"] = step + 1


class Preempted:
    """Remembers a SIGTERM; the loop checkpoints and exits at the end of the current step."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def run(name: str, steps: int, every: int, step_seconds: float) -> int:
    path = checkpoint_path(name)
    preempted = Preempted()
    state = load(path)
    if state is None:
        state = initial_state(steps)
        print(f"start: step 0 of {steps}", flush=True)
    else:
        print(f"resume: step {state['step']} of {steps} from {path}", flush=True)
        if int(state["steps"]) != steps:
            print(f"error: {path} is a run of {state['steps']} steps, not {steps}", file=sys.stderr)
            return USAGE_EXIT
    while int(state["step"]) < steps:
        train_step(state)
        time.sleep(step_seconds)
        if preempted.requested:
            save(path, state)
            print(f"preempted: checkpoint at step {state['step']}", flush=True)
            return PREEMPTED_EXIT
        if int(state["step"]) % every == 0:
            save(path, state)
    save(path, state)
    print("done: " + json.dumps({"step": state["step"], "weight": state["weight"], "loss": state["loss"]}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, required=True, help="steps in all, e.g. 1000")
    parser.add_argument("--every", type=int, default=10, help="checkpoint every K steps (default 10)")
    parser.add_argument(
        "--name",
        default=os.environ.get("JOB_NAME", "train"),
        help="the run's name: its checkpoint directory (default $JOB_NAME, set from the Job's name)",
    )
    parser.add_argument("--step-seconds", type=float, default=0.0, help="pretend each step takes this long")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1:
        parser.error("--steps and --every must be at least 1")
    return run(args.name, args.steps, args.every, args.step_seconds)


if __name__ == "__main__":
    sys.exit(main())
