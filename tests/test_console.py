"""`cwbench` (the console script), `python -m benchmarks` and `python bench.py` are one command."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_console_script_is_declared_for_the_cli_entry_point():
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="cwbench")
    assert script.value == "benchmarks.cli:run"
    from benchmarks.cli import run

    assert script.load() is run


def cwbench_script() -> Path:
    """The `cwbench` script of the environment running the tests (`make` installs it into .venv)."""
    script = Path(sys.executable).parent / "cwbench"
    if not script.exists():
        try:
            importlib.metadata.distribution("cwbench")
        except importlib.metadata.PackageNotFoundError:
            pytest.skip("cwbench is not installed in this environment: run `make venv` (pip install -e .)")
        pytest.fail(f"cwbench is installed but {script} is missing: re-run `make venv` (pip install -e .)")
    return script


def test_cwbench_list_equals_bench_py_and_python_m(tmp_path):
    forms = {
        "cwbench": [str(cwbench_script()), "--list"],
        "bench.py": [sys.executable, str(ROOT / "bench.py"), "--list"],
        "python -m benchmarks": [sys.executable, "-m", "benchmarks", "--list"],
    }
    outputs = {}
    for name, argv in forms.items():
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # not the checkout
        assert done.returncode == 0, f"{name}: {done.stderr}"
        outputs[name] = done.stdout
    assert "models:" in outputs["cwbench"] and "cwvae" in outputs["cwbench"]
    assert outputs["cwbench"] == outputs["bench.py"] == outputs["python -m benchmarks"]


def test_cwbench_exit_codes_are_bench_py_s(tmp_path):
    done = subprocess.run(
        [str(cwbench_script()), "--model", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown model 'nope'") and "Traceback" not in done.stderr
