"""The README's step-cost table from one run: ZO-SGD's step time over its two forward passes, by mode.

MiniLM-L6 (the packaged encoder, all 22.7M parameters trainable) at batch 16 × 64 tokens:
``python -m benchmarks.step_cost`` (add ``--device cuda`` on a GPU). The loss is the mean squared
final hidden state — any scalar of the forward pass costs the same.
"""

import argparse
import timeit

import torch

from benchmarks.optimizer_step import MODES
from zobench import optimizers
from zobench.models import load_model
from zobench.optimizers.noise import NoiseStream, gaussian


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = load_model("minilm-l6", device=args.device).model
    batch = torch.randint(1000, 20000, (16, 64), generator=torch.Generator().manual_seed(0)).to(args.device)

    def loss():
        return model(input_ids=batch).last_hidden_state.pow(2).mean()

    noise, params = NoiseStream(), list(model.parameters())

    def perturbation_pass():
        noise.restart(0)
        with torch.no_grad():
            for param in params:
                param.add_(gaussian(noise, param, 1).fresh, alpha=0.0)

    def forward_time():
        with torch.no_grad():
            return min(timeit.repeat(loss, number=1, repeat=10))

    forward = forward_time()
    steps = {}
    for mode, settings in MODES.items():
        optimizer = optimizers.create("zo-sgd", params, lr=0.0, **settings)
        optimizer.step(loss)
        steps[mode] = min(timeit.repeat(lambda: optimizer.step(loss), number=1, repeat=7))
    forward = min(forward, forward_time())  # the best forward seen, before or after the steps
    regenerate = min(timeit.repeat(perturbation_pass, number=1, repeat=5))
    print(f"device {args.device}; a forward pass: {1e3 * forward:.0f} ms; one perturbation pass (regenerate z, "
          f"add it): {1e3 * regenerate:.0f} ms")
    print("| ZO-SGD step | noise regenerations | extra memory | step time | step / two forward passes |")
    print("|---|---|---|---|---|")
    passes = {"mezo-4-pass": (4, "none"), "fused": (3, "none"), "fused+cache": (1, "one parameter copy")}
    for mode, step in steps.items():
        regenerations, memory = passes[mode]
        print(f"| {mode} | {regenerations} | {memory} | {1e3 * step:.0f} ms | {step / (2 * forward):.2f} |")


if __name__ == "__main__":
    main()
