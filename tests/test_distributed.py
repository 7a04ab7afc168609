"""One ZO run over two gloo processes on the CPU (zobench.distributed), from the registry.

* split data: each rank's closure is its half of the batch; equal to one process on the whole batch
  (fp64, to the rounding of averaging the two shards' means instead of taking one mean);
* split probes: each rank runs half of the step's forward passes; bitwise the serial run, records included;
* a rank killed mid-run fails the run in one line, and the same command resumes it from the records.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import interruptible_suite, registered, sst2_head_suite
from zobench import optimizers
from zobench.distributed import DataParallel, ProbeParallel

STEPS, ROWS = 4, 16
# every method that splits at all (AGZO's probes read each rank's own activations: it refuses ranks)
NAMES = sorted({id(optimizers.get(n).factory): n for n in registered(family="zo") + registered(family="fg")
                if optimizers.get(n).described["splits"]}.values())
PROBE_SPLIT = [name for name in NAMES if "probes" in optimizers.get(name).described["splits"]]


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


class Net(torch.nn.Module):
    """A small fp64 network; its loss is the mean over the rows it is given."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden, self.out = torch.nn.Linear(5, 6).double(), torch.nn.Linear(6, 2).double()
        generator = torch.Generator().manual_seed(1)
        self.inputs = torch.randn(ROWS, 5, generator=generator, dtype=torch.float64)
        self.targets = torch.randn(ROWS, 2, generator=generator, dtype=torch.float64)

    def loss(self, rows=slice(None)):
        prediction = self.out(torch.tanh(self.hidden(self.inputs[rows])))
        return torch.nn.functional.mse_loss(prediction, self.targets[rows])


def steps(name, exchange=None, rows=slice(None)):
    """Parameters and step records after STEPS steps of ``name`` (a short anneal where it has one)."""
    model = Net()
    declared = optimizers.get(name).hyperparameters()
    options = {k: v for k, v in dict(T1=1, T2=3).items() if k in declared}
    optimizer = optimizers.create(name, model.parameters(), lr=1e-2, seed=5, total_steps=STEPS, **options)
    if exchange is not None:
        optimizer.distribute(exchange)
    records = []

    def closure():
        return model.loss(rows)
    closure.whole = model.loss  # the whole training set on every rank (MeZO-SVRG's snapshot)
    for _ in range(STEPS):
        optimizer.step(closure)
        records.append(optimizer.last_record)
    return torch.cat([p.detach().flatten() for p in model.parameters()]), records


def _rank(rank, port, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    results = {("data", name): steps(name, DataParallel(2), slice(rank, None, 2)) for name in NAMES}
    results |= {("probes", name): steps(name, ProbeParallel(rank, 2)) for name in PROBE_SPLIT}
    torch.save(results, Path(folder) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank, args=(free_port(), str(folder)), nprocs=2)
    return [torch.load(folder / f"rank{rank}.pt") for rank in (0, 1)]


@pytest.mark.parametrize("name", NAMES)
def test_data_split_is_the_whole_batch(name, two_ranks):
    """The two shards' mean losses, averaged, differ from the batch's mean by a few ulps (1e-16 of L);
    ĝ divides a loss difference of about ε|∇L·d| ≈ 1e-3 of L, so each step's update moves by about
    1e-13 of itself (FZOO's spread normalisation alike). Bound: 1e-9 of the distance travelled, three
    orders of margin for four steps through a nonlinearity."""
    serial, serial_records = steps(name)
    travelled = float((serial - torch.cat([p.detach().flatten() for p in Net().parameters()])).abs().max())
    for ranks in two_ranks:
        params, records = ranks["data", name]
        torch.testing.assert_close(params, serial, rtol=0, atol=1e-9 * travelled)
        assert [r["seed"] for r in records] == [r["seed"] for r in serial_records]
    assert torch.equal(two_ranks[0]["data", name][0], two_ranks[1]["data", name][0])  # the ranks agree bitwise


@pytest.mark.parametrize("name", PROBE_SPLIT)
def test_probe_split_is_bitwise_the_serial_run(name, two_ranks):
    serial, serial_records = steps(name)
    for ranks in two_ranks:
        params, records = ranks["probes", name]
        assert torch.equal(params, serial)
        assert records == serial_records


def test_the_registry_says_which_methods_split_probes():
    assert {"fzoo", "zo-muon", "zo-sgd"} <= set(PROBE_SPLIT)
    assert "zo-sgd-cons" not in PROBE_SPLIT and "forward-grad" not in PROBE_SPLIT
    model = Net()
    conservative = optimizers.create("zo-sgd-cons", model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="moves θ by its losses: use split data"):
        conservative.distribute(ProbeParallel(0, 2))



SUITE = interruptible_suite("ranks")


def launch(tmp_path, split, port):
    """Two ranks of ``zobench run`` with torchrun's environment (RANK, WORLD_SIZE, MASTER_*)."""
    environment = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
                   "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "zobench", "run", str(tmp_path / "ranks.yaml"), "--out", str(tmp_path / "out"),
               "--split", split, "--quiet"]
    return [subprocess.Popen(command, env={**environment, "RANK": str(r), "LOCAL_RANK": str(r)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_in_one_line_and_it_resumes(tmp_path):
    (tmp_path / "ranks.yaml").write_text(SUITE)
    first = launch(tmp_path, "probes", free_port())
    logs = tmp_path / "out" / "ranks" / "logs"
    deadline = time.time() + 120
    while time.time() < deadline and not (logs.is_dir() and any(len(p.read_text().splitlines()) > 50
                                                                for p in logs.iterdir())):
        time.sleep(0.2)
    first[1].send_signal(signal.SIGKILL)
    _, error = first[0].communicate(timeout=120)
    assert first[0].returncode == 2
    lines = [line for line in error.splitlines() if line.startswith("zobench:")]
    assert len(lines) == 1 and "another rank stopped" in lines[0] and "resumes from its records" in lines[0]

    second = launch(tmp_path, "probes", free_port())
    assert [process.wait(timeout=300) for process in second] == [0, 0]
    (resumed,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "ranks" / "runs").iterdir()]
    assert resumed["resumed_at_step"] >= 50

    # one thread, as each rank has: float32 reductions over 300k entries round by the threads' split
    subprocess.run([sys.executable, "-m", "zobench", "run", str(tmp_path / "ranks.yaml"), "--out",
                    str(tmp_path / "serial"), "--quiet"], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    (serial,) = [json.loads(p.read_text()) for p in (tmp_path / "serial" / "ranks" / "runs").iterdir()]
    assert resumed["final"] == serial["final"] and resumed["key"] == serial["key"]
    assert resumed["environment"]["distributed"]["world_size"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("split", ["probes", "data"])
def test_torchrun_runs_a_suite_as_one_process_does(split, tmp_path):
    """`torchrun --nproc-per-node 2 -m zobench run` on an SST-2 head gives the one-process run's record:
    FZOO split by probes bitwise (one thread per process on both sides); ZO-SGD split by data to
    float32 rounding: each loss is a float32 mean, and averaging two shards' means rounds differently
    (about 1e-7 of the loss; 1e-5 leaves room for the steps' small drift)."""
    optimizer = "fzoo" if split == "probes" else "zo-sgd"
    (tmp_path / "sst.yaml").write_text(sst2_head_suite("sst", f"{{name: {optimizer}, label: run, lr: 0.01}}", 12, 6)
                                       + "targets: [0.7]\n")
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                    str(free_port()), "-m", "zobench", "run", str(tmp_path / "sst.yaml"), "--out", str(tmp_path / "ranks"),
                    "--split", split, "--quiet"], check=True, capture_output=True, env=one_thread)
    subprocess.run([sys.executable, "-m", "zobench", "run", str(tmp_path / "sst.yaml"), "--out", str(tmp_path / "one"),
                    "--quiet"], check=True, capture_output=True, env=one_thread)
    (ranks,), (one,) = ([json.loads(p.read_text()) for p in (tmp_path / out / "sst" / "runs").iterdir()]
                        for out in ("ranks", "one"))
    assert ranks["key"] == one["key"] and ranks["environment"]["distributed"]["split"] == split
    logs = [[json.loads(line) for line in (tmp_path / out / "sst" / "logs" / f"{one['key']}.jsonl").open()]
            for out in ("ranks", "one")]
    ours, theirs = ([v for e in log[1:] for v in e["record"]["evaluations"]] for log in logs)
    if split == "probes":
        assert ours == theirs and ranks["final"] == one["final"]
    else:  # each loss a float32 mean: the two shards' means, averaged, round differently
        assert ours == pytest.approx(theirs, rel=1e-5) and ours != theirs
