"""The ``zobench`` command: ``run SUITE``, ``report SUITE``, ``list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import optimizers
from .report import write_report
from .runner import execute
from .store import ResultStore
from .suite import SuiteError, load_suite


def _store(suite, out: str) -> ResultStore:
    return ResultStore(Path(out) / suite.name)


def _run(args) -> None:
    suite = load_suite(args.suite)
    store = _store(suite, args.out)
    execute(suite, store, progress=(lambda message: None) if args.quiet else print)
    print(f"report: {write_report(suite, store)}")


def _report(args) -> None:
    suite = load_suite(args.suite)
    print(f"report: {write_report(suite, _store(suite, args.out))}")


def _list(args) -> None:
    print(f"{'name':16} {'family':6} {'fwd/step':8} {'buffers':7}  description")
    for name in optimizers.names():
        info = optimizers.get(name)
        print(f"{name:16} {info.family:6} {info.forward_passes:<8} {info.state_buffers:<7}  {info.description}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zobench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (("run", _run, "run a suite's unfinished runs, then write its report"),
                                ("report", _report, "write the report of a suite's finished runs")):
        command = commands.add_parser(name, help=text)
        command.add_argument("suite", help="a suite file, e.g. suites/figure2.yaml")
        command.add_argument("--out", default="reports", help="results root (default: reports/)")
        command.set_defaults(handler=handler)
    commands.choices["run"].add_argument("--quiet", action="store_true", help="no progress output")
    commands.add_parser("list", help="list the registered optimizers").set_defaults(handler=_list)
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except (SuiteError, optimizers.UnknownOptimizerError) as error:
        print(f"zobench: error: {error}", file=sys.stderr)
        return 2
    return 0
