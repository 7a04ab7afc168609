"""What a Slurm job runs: a call that submitit requeues when the job is preempted or times out.

A zobench run checkpoints itself: its step log is written as it goes, and a run started again resumes
from it (bitwise, for replayable optimizers). So requeueing needs no state of its own: on
submitit's preemption or timeout signal, the job asks to be submitted again with the same arguments.
Imported only where submitit is installed (the ``slurm`` extra).
"""

from __future__ import annotations

from submitit.helpers import Checkpointable


class Resumable(Checkpointable):
    """``function(*args)`` as a job that is requeued with the same arguments (Checkpointable's default
    ``checkpoint``) and picks up where its records end."""

    def __init__(self, function):
        self.function = function

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)
