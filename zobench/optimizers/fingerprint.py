"""Fingerprints: a digest of each optimizer's first steps on a fixed float64 problem, committed with
its revision, so that a change of maths cannot slip past without a new revision.

A run's key includes its optimizer's revision (:class:`zobench.suite.RunSpec`): a bumped revision
means new runs, an unchanged one keeps earlier records valid. ``fingerprints.json`` holds, per
zobench optimizer, the revision and the digest its code had when last committed; the registry-driven
test compares them with the code's, and fails when the digest moved but the revision did not.

The digest hashes the parameters' displacement after each of :data:`STEPS` steps, rounded to six
significant digits: far finer than any change of maths, far coarser than the last-place differences
between CPUs (a difference quotient with eps=1e-3 keeps about 13 of fp64's 16 digits).

    python -m zobench.optimizers.fingerprint            # lists the optimizers whose digest moved
    python -m zobench.optimizers.fingerprint --write    # records the current revisions and digests
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from .contract import _build
from .registry import REGISTRY, OptimizerInfo

STEPS = 5
LR = 1e-2
FILE = Path(__file__).with_name("fingerprints.json")


def _rounded(value: float) -> str:
    return f"{value:.6g}" if abs(value) > 1e-12 else "0"


def digest(info: OptimizerInfo) -> str:
    """The optimizer's first steps, hashed (16 hex digits)."""
    model, optimizer = _build(info, lr=LR)
    start = [p.detach().clone() for p in model.parameters()]
    text = []
    for _ in range(STEPS):
        optimizer.step(model)
        text += [_rounded(float(v)) for p, p0 in zip(model.parameters(), start) for v in (p.detach() - p0).flatten()]
    return hashlib.sha256(" ".join(text).encode()).hexdigest()[:16]


def current() -> dict[str, dict]:
    """Revision and digest of every optimizer zobench itself registers (plugins keep their own)."""
    return {name: {"revision": info.revision, "digest": digest(info)}
            for name in REGISTRY.names() if (info := REGISTRY.get(name)).distribution is None}


def committed() -> dict[str, dict]:
    return json.loads(FILE.read_text())


def problems(now: dict[str, dict], then: dict[str, dict]) -> list[str]:
    """One line per optimizer whose code and committed fingerprint disagree, naming the fix."""
    found = []
    for name, entry in now.items():
        old = then.get(name)
        if old is None:
            found.append(f"{name}: no committed fingerprint; run python -m zobench.optimizers.fingerprint --write")
        elif entry["digest"] != old["digest"] and entry["revision"] == old["revision"]:
            found.append(f"{name}: its steps changed but its revision is still {old['revision']}; bump it "
                         f"(revision={old['revision'] + 1} where it is registered), then run "
                         "python -m zobench.optimizers.fingerprint --write")
        elif entry != old:
            found.append(f"{name}: revision {entry['revision']} is not the committed {old['revision']}; run "
                         "python -m zobench.optimizers.fingerprint --write")
    return found + [f"{name}: fingerprinted but no longer registered; run python -m zobench.optimizers.fingerprint "
                    "--write" for name in then if name not in now]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zobench.optimizers.fingerprint", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="record the current revisions and digests")
    args = parser.parse_args(argv)
    now = current()
    if args.write:
        FILE.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        return 0
    found = problems(now, committed())
    print("\n".join(found) or "every fingerprint matches its revision")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
