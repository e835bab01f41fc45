"""The workflow passes `snakemake --lint`, and the rules' conda environment lists what pyproject.toml lists."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import ROOT


def test_lint_is_clean() -> None:
    """Snakemake's linter on the demo config: no rule without a software environment, no global in a shell command,
    no functions among the rules; the exit status is 1 on any of these."""
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True, cwd=ROOT)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr


def requirements(lines: list[str]) -> set[str]:
    """Requirements in one normal form (name and specifiers), so spelling and spacing do not count as a difference."""
    return {f"{(r := Requirement(line)).name.lower().replace('_', '-')}{r.specifier}" for line in lines}


def test_environment_lists_what_pyproject_lists() -> None:
    """No conda channel is reachable here, so the environment is checked against the source of truth rather than
    built: its pip packages are pyproject.toml's dependencies, and its Python meets requires-python."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert requirements(pip) == requirements(project["dependencies"])
    python = next(d.split("=", 1)[1] for d in conda if d.startswith("python="))
    assert Requirement(f"python{project['requires-python']}").specifier.contains(python)
    assert set(conda) == {f"python={python}", "pip"}, "a conda package beside pip's would be a second list"
