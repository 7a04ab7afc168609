"""A probe-split FZOO step over two gloo processes against the same step in one process.

FZOO makes nine forward passes a step (its base and eight one-sided probes). Split over two ranks,
each rank runs five or four of them, makes every move (so each loss is bitwise the serial one) and
sends the step's nine losses once (one all-reduce of nine float64 values). Random weights of the
MiniLM-L6 shape, batch 16 × 64. Rows:

* one process, all the machine's threads (what a user runs without torchrun);
* one process, one thread (each rank's share of a 2-core machine);
* two ranks, one thread each, split probes (and split data for comparison: every rank runs all nine
  passes on half the batch).

    python -m benchmarks.distributed_step          # the table of docs, with the machine named
    asv run --python=same --bench DistributedStep  # the speed-up and the bytes, tracked
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zobench import optimizers
from zobench.distributed import DataParallel, ProbeParallel
from zobench.models import random_model

SHAPE, BATCH, LENGTH, METHOD = "minilm-l6", 16, 64, "fzoo"


def _setup(threads: int, rows: slice = slice(None)):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = random_model(SHAPE).model.eval()
    tokens = torch.randint(1000, 20000, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))[rows]
    optimizer = optimizers.create(METHOD, model.parameters(), lr=0.0)
    return optimizer, lambda: model(input_ids=tokens).last_hidden_state.pow(2).mean()


def _median_step(optimizer, loss, steps: int) -> float:
    optimizer.step(loss)  # warm-up: allocator, lazy state
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step(loss)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _rank(rank: int, port: int, split: str, steps: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    optimizer, loss = _setup(1, slice(rank, None, 2) if split == "data" else slice(None))
    exchange = DataParallel(2) if split == "data" else ProbeParallel(rank, 2)
    optimizer.distribute(exchange)
    dist.barrier()
    seconds = _median_step(optimizer, loss, steps)
    if rank == 0:
        Path(folder, "result").write_text(f"{seconds} {exchange.bytes_sent / (steps + 1)}")
    dist.destroy_process_group()


def two_ranks(split: str, steps: int) -> tuple[float, float]:
    """(median step seconds, bytes each rank sends per step) of two gloo ranks."""
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        port = handle.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_rank, args=(port, split, steps, folder), nprocs=2)
        seconds, sent = Path(folder, "result").read_text().split()
    return float(seconds), float(sent)


def one_process(threads: int, steps: int) -> float:
    before = torch.get_num_threads()
    try:
        return _median_step(*_setup(threads), steps)
    finally:
        torch.set_num_threads(before)


class DistributedStep:
    """Two-rank FZOO steps against one process with every thread (higher speed-up is better)."""

    timeout = 900

    def setup_cache(self):
        serial = one_process(os.cpu_count() or 1, 3)
        probes, sent = two_ranks("probes", 3)
        return serial, probes, sent

    def track_probe_split_speedup(self, cache):
        serial, probes, _ = cache
        return serial / probes

    track_probe_split_speedup.unit = "ratio"

    def track_probe_split_bytes_per_step(self, cache):
        return cache[2]

    track_probe_split_bytes_per_step.unit = "bytes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (median)")
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    rows = [(f"one process, {threads} threads", one_process(threads, args.steps), 0.0),
            ("one process, 1 thread", one_process(1, args.steps), 0.0),
            ("two ranks × 1 thread, split probes", *two_ranks("probes", args.steps)),
            ("two ranks × 1 thread, split data", *two_ranks("data", args.steps))]
    print(f"{METHOD} step, random {SHAPE}, batch {BATCH} × {LENGTH}, {platform.processor() or platform.machine()}, "
          f"{threads} cores; median of {args.steps} steps")
    print("| configuration | step | speed-up over the first row | bytes sent per step and rank |")
    print("|---|---|---|---|")
    for name, seconds, sent in rows:
        print(f"| {name} | {seconds:.2f} s | {rows[0][1] / seconds:.2f} | {sent:.0f} |")


if __name__ == "__main__":
    main()
