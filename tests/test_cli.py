"""The command line: --help, --version, the listings, and a broken plugin reported in one line."""

import subprocess
import sys

from zobench import __version__
from zobench.cli import main
from zobench.optimizers import REGISTRY
from zobench.problems.test_functions import TEST_FUNCTIONS
from zobench.tasks import task_names


def zobench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "zobench", *args], capture_output=True, text=True, env=env)


def test_help_names_every_command_and_version_prints_the_version():
    result = zobench("--help")
    assert result.returncode == 0 and "``" not in result.stdout  # plain text, not reStructuredText
    for command in ("run SUITE", "report SUITE", "check SUITE", "memory STUDY", "list [WHAT]"):
        assert command in result.stdout
    assert zobench("--version").stdout.strip() == f"zobench {__version__}"


def test_list_shows_every_optimizer_with_its_hyperparameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in REGISTRY.names():
        info = REGISTRY.get(name)
        assert f"{name} " in out
        assert all(f"{k}=" in out for k in info.hyperparameters())
    assert "T1=1024" in out and "betas=(0.9, 0.999)" in out and "lr=required" in out


def test_list_tasks_models_and_problems(capsys):
    for what, expected in (("tasks", task_names()), ("models", ["minilm-l6", "random:opt-13b"]),
                           ("problems", list(TEST_FUNCTIONS))):
        assert main(["list", what]) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in expected), what


def test_a_broken_plugin_is_one_line_naming_its_distribution(tmp_path):
    (tmp_path / "broken_module.py").write_text("raise ImportError('cannot import name missing_thing')\n")
    info = tmp_path / "zobench_broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zobench-broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zobench.optimizers]\nbroken = broken_module:register\n")
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = zobench("list", env=env)
    assert result.returncode == 0 and "zo-sgd" in result.stdout  # the built-ins are still listed
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "zobench-broken-plugin" in lines[0] and "ImportError: cannot import name missing_thing" in lines[0]
    assert "fix or uninstall zobench-broken-plugin" in lines[0]


def test_quiet_silences_every_progress_bar(monkeypatch):
    import transformers

    from zobench.cli import _quiet

    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    _quiet()
    try:
        assert not transformers.utils.logging.is_progress_bar_enabled()  # "Loading weights"
        import os

        worker = subprocess.run([sys.executable, "-c", "from tqdm import tqdm; print(tqdm(range(3)).disable)"],
                                capture_output=True, text=True, env=dict(os.environ))
        assert worker.stdout.strip() == "True"  # any tqdm in a worker process the run starts
    finally:
        transformers.utils.logging.enable_progress_bar()


def test_the_step_bar_restarts_its_clock_when_training_starts():
    from zobench.harness import _step_progress

    class Bar:
        total, n, resets = 100, 0, 0

        def reset(self, total):
            self.resets, self.n = self.resets + 1, 0

        def update(self, by):
            self.n += by

    bar = Bar()
    advance = _step_progress(bar)
    advance(40)  # a resumed run starts training at step 40, after loading and caching
    advance(41)
    advance(42)
    assert (bar.resets, bar.n) == (1, 42)
