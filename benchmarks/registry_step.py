"""The step cost of every registered method, with every sampler it accepts, generated from the registry.

A method registered tomorrow (zobench's or a plugin's) is measured with no edit here. The ratio is a
step's time over its own forward passes, ``step / (passes × one forward)``: 1.0 means the noise and the
update cost nothing beyond the forward passes. ``mezo-loop`` (MeZO's own trainer loop, two passes) is
the reference row. Every step runs at learning rate 0 on one fixed random batch.

* asv: ``track_step_over_forwards`` and ``peakmem_step`` per method × sampler × shape, on random
  weights of the MiniLM-L6 shape (22.7M parameters, the packaged encoder's) and of OPT-125m;
* ``python -m benchmarks.registry_step [--model random:opt-125m]``: the same rows from one process,
  printed as the markdown table of docs/benchmarking.md, with the machine named;
* ``python -m benchmarks.registry_step --profile "zo-adamu|table"``: where one row's step time goes, by
  operator (the table sampler by default where the method accepts it, else its own);
* ``python -m benchmarks.registry_step --memory "zo-muon"``: what a row's step holds at its peak beyond
  one forward's, by the zobench line that allocated it.
"""

import argparse
import platform
import statistics
from pathlib import Path

import torch

from benchmarks.optimizer_step import DIRECTIONS
from benchmarks.step_cost import build, forward_seconds, mezo_loop_step, synchronised_median
from zobench import optimizers
from zobench.problems.base import batch_slice

SHAPES = {"minilm-l6": "random:minilm-l6", "opt-125m": "random:opt-125m"}
BATCH, LENGTH = 16, 64
OWN = "own"  # the sampler of a method that draws its own probes


def rows() -> list[tuple[str, str]]:
    """(method, sampler) for every zeroth-order and forward-gradient name (one name per factory:
    aliases are not measured twice), each sampler it accepts, after MeZO's loop."""
    named = {}  # factory -> the last of its names in sorted order: zo-adam@g, not its alias zo-adam
    for name in optimizers.names():
        if optimizers.get(name).family != "fo":
            named[id(optimizers.get(name).factory)] = name
    found = [("mezo-loop", "gaussian")]
    for name in sorted(named.values()):
        directions = DIRECTIONS if "direction" in optimizers.get(name).hyperparameters() else [OWN]
        found += [(name, direction) for direction in directions]
    return found


def step_function(name: str, direction: str, params, loss):
    """(a function taking one step at learning rate 0, the forward passes it spends)."""
    if name == "mezo-loop":
        return lambda: mezo_loop_step(params, loss), 2
    info = optimizers.get(name)
    hyperparameters = {} if direction == OWN else {"direction": direction}
    if "T1" in info.hyperparameters():
        hyperparameters["T1"] = 1  # ZO-AdaMU inside its anneal: both parts of its perturbation drawn
    optimizer = info.create(params, context={"total_steps": 1000}, lr=0.0, **hyperparameters)

    def closure():
        return loss()
    # the batch stands for the whole training set: MeZO-SVRG's first step is its snapshot, and the
    # median over the steps after two warm-ups is of the steps between snapshots (its 4 passes)
    closure.whole = loss
    closure.part = lambda part, parts: loss(batch_slice(BATCH, part, parts))  # GRZO's per-example losses
    closure.examples = BATCH
    return lambda: optimizer.step(closure), info.describe(1000, **hyperparameters)["forward_passes"]


def measure(model: str, steps: int, selected=None, device: str = "cpu") -> dict:
    """Seconds of one forward and of each row's step (medians after two warm-up steps)."""
    params, loss = build(model, "float32", device, BATCH, LENGTH)
    where = torch.device(device)
    before = forward_seconds(loss, where, steps, warm=True)
    result = {}
    for name, direction in selected or rows():
        step, passes = step_function(name, direction, params, loss)
        for _ in range(2):
            step()
        result[name, direction] = (synchronised_median(step, where, steps), passes)
    after = forward_seconds(loss, where, steps)
    return {"forward": min(before, after), "steps": result}


def table(result: dict) -> str:
    forward = result["forward"]
    by_method: dict[str, dict[str, str]] = {}
    for (name, direction), (seconds, passes) in result["steps"].items():
        by_method.setdefault(name, {})[direction] = f"{seconds / (passes * forward):.2f} ({passes} × {1e3 * forward:.0f} ms)"
    lines = ["| method | " + " | ".join(DIRECTIONS + [OWN + " sampler"]) + " |", "|---|" + "---|" * (len(DIRECTIONS) + 1)]
    for name, cells in by_method.items():
        lines.append(f"| `{name}` | " + " | ".join(cells.get(d, "") for d in DIRECTIONS + [OWN]) + " |")
    return "\n".join(lines)


def _forward_model(shape):
    params, loss = build(SHAPES[shape], "float32", "cpu", BATCH, LENGTH)
    return params, loss


class RegistryStep:
    """Every registered method's step over its own forward passes, per sampler and shape."""

    params = ([f"{name}|{direction}" for name, direction in rows()], list(SHAPES))
    param_names = ["method|sampler", "shape"]
    timeout = 600

    def setup(self, row, shape):
        name, direction = row.split("|")
        self.params_, self.loss = _forward_model(shape)
        self.step, self.passes = step_function(name, direction, self.params_, self.loss)
        self.step()  # state buffers exist before measuring

    def track_step_over_forwards(self, row, shape):
        cpu = torch.device("cpu")
        return synchronised_median(self.step, cpu, 5) / (self.passes * forward_seconds(self.loss, cpu, 5))

    track_step_over_forwards.unit = "ratio"


class RegistryMemory:
    """Peak memory of one step of every registered method. Setup builds and never steps, so the step's
    first call, which creates the state, is the peak asv reads (the whole process's, setup included)."""

    params = RegistryStep.params
    param_names = RegistryStep.param_names
    timeout = 600

    def setup(self, row, shape):
        name, direction = row.split("|")
        self.params_, self.loss = _forward_model(shape)
        self.step, _ = step_function(name, direction, self.params_, self.loss)

    def peakmem_step(self, row, shape):
        self.step()


class InferenceMemory:
    """One forward's peak, the floor every step's peak is compared with (once per shape)."""

    params = (list(SHAPES),)
    param_names = ["shape"]
    timeout = 600

    def setup(self, shape):
        self.params_, self.loss = _forward_model(shape)

    def peakmem_inference(self, shape):
        with torch.no_grad():
            self.loss()


def _warmed_row(model: str, name: str, direction: str, batch: int, length: int):
    """(parameters, loss, a step function, its forward passes) of one row, after two warm-up steps (so
    state buffers exist and first-step work, such as MeZO-SVRG's snapshot, is behind it)."""
    params, loss = build(model, "float32", "cpu", batch, length)
    step, passes = step_function(name, direction, params, loss)
    for _ in range(2):
        step()
    return params, loss, step, passes


def profile(model: str, name: str, direction: str, steps: int, top: int = 12, batch: int = BATCH,
            length: int = LENGTH) -> str:
    """Where one row's step time goes: ``torch.profiler`` over ``steps`` steps after two warm-ups, the
    operators with the most self CPU time beside one forward pass's, so a step's excess over its
    passes is read from the table rather than guessed."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    _, loss, step, passes = _warmed_row(model, name, direction, batch, length)
    with torch.no_grad(), torch_profile(activities=[ProfilerActivity.CPU]) as forward:
        loss()
    with torch_profile(activities=[ProfilerActivity.CPU]) as stepped:
        for _ in range(steps):
            step()
    forward_us = sum(event.self_cpu_time_total for event in forward.key_averages())
    events = sorted(stepped.key_averages(), key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events)
    lines = [f"{name} ({direction}), {passes} forward passes a step: {total / steps / 1e3:.0f} ms of operators a step, "
             f"{total / steps / (passes * forward_us):.2f} × its passes (one forward: {forward_us / 1e3:.0f} ms)",
             "| operator | calls a step | ms a step | share of the step |", "|---|---|---|---|"]
    for event in events[:top]:
        lines.append(f"| `{event.key}` | {event.count / steps:g} | {event.self_cpu_time_total / steps / 1e3:.1f} | "
                     f"{event.self_cpu_time_total / total:.0%} |")
    return "\n".join(lines)


def _allocations(trace: dict) -> tuple[int, list[tuple[float, int]]]:
    """(the most bytes allocated at once during a profile above what was held at its start, the
    allocations alive at that peak as (time, bytes)), from a chrome trace's ``[memory]``
    events; summed here, since the allocator's own running total also counts blocks from before."""
    events = sorted((e for e in trace["traceEvents"] if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    alive, held, peak, at_peak = {}, 0, 0, {}
    for event in events:
        size, address = event["args"]["Bytes"], event["args"]["Addr"]
        held += size
        if size > 0:
            alive[address] = (event["ts"], size)
        else:
            alive.pop(address, None)
        if held > peak:
            peak, at_peak = held, dict(alive)
    return peak, list(at_peak.values())


def _own_frames(trace: dict) -> list[dict]:
    """The trace's Python frames in zobench's or the benchmarks' code."""
    return [e for e in trace["traceEvents"] if e.get("cat") == "python_function" and e.get("ph") == "X"
            and ("zobench/" in e["name"] or "benchmarks/" in e["name"])]


def _allocating_line(frames: list[dict], when: float) -> str:
    """The innermost of ``frames`` running at ``when``: the line that allocated."""
    running = [e for e in frames if e["ts"] <= when <= e["ts"] + e["dur"]]
    if not running:
        return "(no zobench frame: the model's forward, or a profile without Python stacks)"
    name = min(running, key=lambda e: e["dur"])["name"]
    return name[name.find("zobench/") if "zobench/" in name else name.find("benchmarks/"):]


def memory(model: str, name: str, direction: str, top: int = 8, batch: int = BATCH, length: int = LENGTH) -> str:
    """What one row's step holds at its peak beyond one forward's peak: ``torch.profiler``'s allocator
    events over a step (after two warm-ups, so state buffers already exist and are not counted), the
    allocations alive at the step's peak grouped by the zobench line that made them, so a step's memory
    over its forward is read from the allocator rather than guessed."""
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile as torch_profile

    def trace(stack: bool) -> tuple[dict, dict, list]:
        """(the forward's trace, the step's trace, the parameters), from a freshly built row."""
        params, loss, step, _ = _warmed_row(model, name, direction, batch, length)
        found = []
        for work, stacks in ((lambda: torch.no_grad()(loss)(), False), (step, stack)):
            with torch_profile(activities=[ProfilerActivity.CPU], profile_memory=True, with_stack=stacks) as profiled:
                work()
            with tempfile.NamedTemporaryFile(suffix=".json") as file:
                profiled.export_chrome_trace(file.name)
                found.append(json.loads(Path(file.name).read_text()))
        return found[0], found[1], params

    try:
        *traces, params = trace(stack=True)
    except RuntimeError:  # the forward gradient swaps parameters, which the stack tracer's weak references
        *traces, params = trace(stack=False)  # forbid; the failed step left its row unusable, so build anew
    forward_peak, _ = _allocations(traces[0])
    step_peak, alive = _allocations(traces[1])
    largest = max(p.numel() * p.element_size() for p in params)
    frames, by_line = _own_frames(traces[1]), {}
    for when, size in alive:
        by_line.setdefault(_allocating_line(frames, when), []).append(size)
    mib = 2 ** 20
    lines = [f"{name} ({direction}): step peak {step_peak / mib:.0f} MiB allocated above its start (θ, state), one forward's "
             f"{forward_peak / mib:.0f} MiB: {(step_peak - forward_peak) / mib:+.0f} MiB "
             f"(the largest parameter tensor is {largest / mib:.1f} MiB)",
             "| alive at the step's peak, allocated by | tensors | MiB |", "|---|---|---|"]
    for line, sizes in sorted(by_line.items(), key=lambda item: -sum(item[1]))[:top]:
        lines.append(f"| `{line}` | {len(sizes)} | {sum(sizes) / mib:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:minilm-l6", help="random:minilm-l6 (default), random:opt-125m, …")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (median)")
    parser.add_argument("--only", nargs="*", help="methods to measure (default: the whole registry)")
    instead = parser.add_mutually_exclusive_group()
    instead.add_argument("--profile", metavar="METHOD[|SAMPLER]",
                         help="instead of the table, where one row's step time goes (torch.profiler)")
    instead.add_argument("--memory", metavar="METHOD[|SAMPLER]",
                         help="instead of the table, what one row's step holds at its peak beyond a forward's")
    args = parser.parse_args()
    if args.profile or args.memory:
        name, _, direction = (args.profile or args.memory).partition("|")
        direction = direction or ("table" if "direction" in optimizers.get(name).hyperparameters() else OWN)
        print(profile(args.model, name, direction, args.steps) if args.profile else memory(args.model, name, direction))
        return
    selected = [row for row in rows() if not args.only or row[0] in args.only or row[0] == "mezo-loop"]
    result = measure(args.model, args.steps, selected)
    print(f"{args.model}, float32, batch {BATCH} × {LENGTH}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; one forward {1e3 * result['forward']:.1f} ms; step / (its forward "
          f"passes × one forward), median of {args.steps} steps:")
    print(table(result))
    medians = [seconds / (passes * result["forward"]) for seconds, passes in result["steps"].values()]
    print(f"median over the rows: {statistics.median(medians):.2f}")


if __name__ == "__main__":
    main()
