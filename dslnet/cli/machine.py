"""Whether this machine can give `dslnet bench` steady timings: its load and cores.

torch's intra-op thread pool spins and waits on its threads: when other work holds
the cores it needs, a call can take hundreds of times longer (300x was seen), where
ONNX Runtime slows down far less. So bench warns, before measuring, when the
machine is busy or when the threads it will use exceed the cores that are free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BUSY_SHARE = 0.5  # a one-minute load average over this share of the cores is "busy"


@dataclass(frozen=True)
class Machine:
    load: float  # the one-minute load average
    cores: int  # the cores this process may run on

    @property
    def free_cores(self) -> float:
        return max(0.0, self.cores - self.load)


def this_machine() -> Machine | None:
    """Load and usable cores now; None where the system does not say (no getloadavg)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return Machine(load, max(1, cores))


def load_warnings(machine: Machine, threads: int) -> list[str]:
    """What the user should know before trusting timings measured with `threads`."""
    found: list[str] = []
    cores = f"{machine.cores} core{'s' * (machine.cores != 1)}"
    if machine.load > BUSY_SHARE * machine.cores:
        found.append(
            f"the machine is busy (load average {machine.load:.2f} over the last minute, "
            f"{cores}): timings will be slower and vary more than on an idle machine"
        )
    free = int(machine.free_cores)
    if threads > free:
        found.append(
            f"torch will run {threads} thread{'s' * (threads != 1)} but only {free} of "
            f"{cores} {'is' if free == 1 else 'are'} free: torch's thread pool can slow "
            f"down by orders of magnitude when its threads wait for cores (ONNX Runtime "
            f"much less); measure on an idle machine or give --threads {max(1, free)}"
        )
    return found
