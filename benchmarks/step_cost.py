"""The README's step-cost table from one run: a ZO step's time over its two forward passes, by mode.

``python -m benchmarks.step_cost`` measures MiniLM-L6 (the packaged encoder, all 22.7M parameters
trainable) at batch 16 × 64 tokens on the CPU; ``--model random:opt-1.3b --dtype float16 --device
cuda`` measures a random-weight OPT shape (its causal-LM loss). Rows:

* ``mezo-loop`` — a faithful restatement of MeZO's own trainer loop: ``torch.manual_seed`` then
  ``torch.normal`` per tensor, allocating ``param.data = param.data + …`` updates, four draws a step;
* ``mezo-4-pass``, ``fused``, ``fused+cache`` — zobench's ``zo-sgd`` in its three modes, with each
  sampler (``direction``): Gaussian draws (MeZO's), packed-bit Rademacher signs, and windows of the
  shared Gaussian table;
* ``zo-adamu`` — the paper's method (its uncertain perturbation draws two noise tensors per parameter,
  from the chosen sampler), by default and with ``cache_noise``, with each sampler.

Every time is device-synchronised; a row is the median of ``--steps`` timed steps after two warm-ups,
and the forward pass is the median of as many (taken before and after the steps).
"""

import argparse
import statistics
import time

import torch

from benchmarks.optimizer_step import DIRECTIONS, MODES
from zobench import optimizers
from zobench.models import load_model
from zobench.optimizers.method import SAMPLERS
from zobench.optimizers.noise import TABLE_SIZE, NoiseStream

PASSES = {"mezo-loop": (4, "none; allocates a new tensor per update"), "mezo-4-pass": (4, "none"),
          "fused": (3, "none"), "fused+cache": (1, "one parameter copy")}
LOOP = ("mezo-loop", "mezo-loop", "gaussian")  # MeZO's own trainer: Gaussian draws only
ROWS = ([LOOP] + [("zo-sgd", mode, direction) for direction in DIRECTIONS for mode in MODES]
        + [("zo-adamu", mode, direction) for direction in DIRECTIONS for mode in ("fused", "fused+cache")])


def synchronised_median(call, device: torch.device, repeat: int) -> float:
    """The median wall time of ``call`` over ``repeat`` calls, each bracketed by device syncs."""
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def forward_seconds(loss, device: torch.device, repeat: int, warm: bool = False) -> float:
    """The median seconds of one forward pass without gradients (after one untimed pass if ``warm``)."""
    def forward():
        with torch.no_grad():
            loss()

    if warm:
        forward()
    return synchronised_median(forward, device, repeat)


def mezo_loop_step(params, loss, *, eps: float = 1e-3, lr: float = 0.0, seed: int = 0) -> float:
    """One step of MeZO's trainer as MeZO writes it (global seed, ``torch.normal``, allocating adds)."""

    def perturb(scale: float) -> None:
        torch.manual_seed(seed)
        for param in params:
            z = torch.normal(mean=0, std=1, size=param.data.size(), device=param.data.device,
                             dtype=param.data.dtype)
            param.data = param.data + scale * z * eps

    with torch.no_grad():
        perturb(1)
        plus = loss()
        perturb(-2)
        minus = loss()
        perturb(1)
        projected = float((plus - minus) / (2 * eps))
        torch.manual_seed(seed)
        for param in params:
            z = torch.normal(mean=0, std=1, size=param.data.size(), device=param.data.device, dtype=param.data.dtype)
            param.data = param.data - lr * projected * z
    return float(plus)


def build(model_name: str, dtype: str, device: str, batch: int, length: int):
    """The model's parameters and a loss closure on one fixed random batch (``rows``: a slice of it)."""
    loaded = load_model(model_name, dtype=dtype, device=device)
    model = loaded.model.eval()
    tokens = torch.randint(1000, 20000, (batch, length), generator=torch.Generator().manual_seed(0)).to(device)
    if loaded.kind == "causal":
        def loss(rows=slice(None)):
            return model(input_ids=tokens[rows], labels=tokens[rows]).loss
    else:  # an encoder without LM head: any scalar of the forward pass costs the same
        def loss(rows=slice(None)):
            return model(input_ids=tokens[rows]).last_hidden_state.float().pow(2).mean()
    return list(model.parameters()), loss


def measure(model_name: str, dtype: str, device: str, batch: int, length: int, steps: int) -> dict:
    """Forward time, perturbation-pass time and every mode's step time (seconds)."""
    params, loss = build(model_name, dtype, device, batch, length)
    where = torch.device(device)
    before = forward_seconds(loss, where, steps, warm=True)
    noise = NoiseStream()
    passes = {}
    for direction in DIRECTIONS:
        def perturbation_pass():
            noise.restart(0)
            with torch.no_grad():
                for param in params:
                    param.add_(SAMPLERS[direction](noise, param, 1).fresh, alpha=0.0)

        perturbation_pass()  # the table is built once per process, not per pass
        passes[direction] = synchronised_median(perturbation_pass, where, steps)
    step_times = {}
    for name, mode, direction in ROWS:
        if mode == "mezo-loop":
            def step():
                mezo_loop_step(params, loss)
        else:
            # ZO-AdaMU within its anneal (T1 = 1): every step draws both parts of its perturbation
            horizon = {"total_steps": 1000, "T1": 1} if name == "zo-adamu" else {}
            optimizer = optimizers.create(name, params, lr=0.0, direction=direction, **MODES[mode], **horizon)

            def step():
                optimizer.step(loss)
        for _ in range(2):
            step()
        step_times[name, mode, direction] = synchronised_median(step, where, steps)
    after = forward_seconds(loss, where, steps)
    return {"forward": min(before, after), "perturbation_pass": passes, "steps": step_times}


def table(result: dict) -> str:
    forward = result["forward"]
    lines = ["| optimizer | mode | noise | regenerations | extra memory during the step | step time | "
             "step / two forward passes |", "|---|---|---|---|---|---|---|"]
    table_memory = f"the table ({TABLE_SIZE * 4 >> 20} MiB in fp32)"
    for (name, mode, direction), seconds in result["steps"].items():
        regenerations, memory = PASSES[mode]
        if name == "zo-adamu" and mode == "fused+cache":
            memory = "three parameter copies (its two draws and its probe)"
        if direction == "table":
            memory = table_memory if memory == "none" else f"{memory} (views) + {table_memory}"
        lines.append(f"| {name} | {mode} | {direction} | {regenerations} | {memory} | {1e3 * seconds:.1f} ms | "
                     f"{seconds / (2 * forward):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6", help="minilm-l6 (default) or random:opt-1.3b, …")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (median)")
    args = parser.parse_args()
    result = measure(args.model, args.dtype, args.device, args.batch, args.length, args.steps)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    passes = ", ".join(f"{direction} {1e3 * seconds:.1f} ms" for direction, seconds in result["perturbation_pass"].items())
    print(f"{args.model}, {args.dtype}, batch {args.batch} × {args.length}, on {where}; a forward pass: "
          f"{1e3 * result['forward']:.1f} ms; one perturbation pass (draw z, add it): {passes}")
    print(table(result))
    mezo = result["steps"][LOOP]
    print("speed-up over MeZO's loop: " + ", ".join(f"{name} {mode} {direction} {mezo / seconds:.2f}×"
                                                   for (name, mode, direction), seconds in result["steps"].items()
                                                   if mode != "mezo-loop"))


if __name__ == "__main__":
    main()
