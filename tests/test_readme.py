"""Every command the committed READMEs show works as typed (issue 19).

Each `snakemake` command, from README.md, reports/*/README.md and the config files' comments, builds its DAG as a
dry run in a fresh copy of the workflow: the directory a new user's clone would be, so the command runs unchanged
(no `-d`, no `-s`) and no developer's results/ or .snakemake/ is read or written. Only `-n` is added, and the
venv's `snakemake` becomes this interpreter's. Each `python -m elth...` command runs on files this test writes
where the command looks for them, or is listed below with the reason it is not a command to run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT, write_mnist_like
from elth.checkpoint import Checkpoint, build_for
from elth.prune import Mask, prunable

READMES = [ROOT / "README.md", *sorted(ROOT.glob("reports/*/README.md"))]
CONFIGS = [ROOT / "config.yaml", *sorted(ROOT.glob("config/*/*.yaml"))]
COMMAND = re.compile(r"(?:\.venv/bin/)?(?:snakemake|python -m elth\S*)(?:\s|$)")
# `...` and `<piece>` stand for the reader's own arguments.
PLACEHOLDER = re.compile(r"\.\.\.|<[^>]+>")
# What a clone holds that a dry run reads.
CLONE = ("Snakefile", "config.yaml", "environment.yml", "config", "workflow", "elth")
# The README's headline paper command before issue 19: `--configfile` takes every later word as a config file,
# so the target is read as YAML and the command fails before the workflow is parsed.
TRAP = ".venv/bin/snakemake --cores 8 --configfile config/paper/cifar10-resnet.yaml results/figures/fig3.pdf"


@dataclass(frozen=True)
class Shown:
    """A command as a README shows it: the file, its words, and what an `export` before it sets."""

    where: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def commands_in(text: str, where: str) -> list[Shown]:
    """The commands of a Markdown text: each line (or `&&` part) of a bash block, and each inline code span of
    the prose, that starts with snakemake or python -m elth."""
    found = []
    for block in re.findall(r"^```(?:bash|sh)\n(.*?)^```", text, re.M | re.S):
        env: tuple[tuple[str, str], ...] = ()
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:1] == ["export"]:
                    env += tuple(tuple(word.split("=", 1)) for word in words[1:])
                elif COMMAND.match(part.strip()):
                    found.append(Shown(where, tuple(words), env))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    spans = (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose))
    return found + [Shown(where, tuple(shlex.split(span))) for span in spans if COMMAND.match(span)]


def shown_commands() -> list[Shown]:
    """Every command of the committed READMEs and config comments, each once."""
    found = [c for readme in READMES for c in commands_in(readme.read_text(), str(readme.relative_to(ROOT)))]
    for config in CONFIGS:
        for line in re.findall(r"^#\s+((?:\.venv/bin/)?snakemake\s.*)$", config.read_text(), re.M):
            found.append(Shown(str(config.relative_to(ROOT)), tuple(shlex.split(line, comments=True))))
    unique: dict[tuple, Shown] = {}
    for shown in found:
        unique.setdefault((shown.argv, shown.env), shown)
    return list(unique.values())


def is_snakemake(shown: Shown) -> bool:
    return shown.argv[0].endswith("snakemake")


def params(commands: list[Shown]) -> list:
    """One test per command; a command with a placeholder, or one that needs a finished study, skipped as such."""
    marked = []
    for c in commands:
        reason = (f"a placeholder, in {c.where}" if PLACEHOLDER.search(c.text) else
                  f"Snakemake's report needs a finished study's files, in {c.where}" if "--report" in c.argv else None)
        marked.append(pytest.param(c, id=c.text, marks=[pytest.mark.skip(reason=reason)] if reason else []))
    return marked


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow as a fresh clone has it, with no results yet."""
    repo = tmp_path_factory.mktemp("clone")
    for item in CLONE:
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, repo / item)
    return repo


def dry_run(shown: Shown, cwd: Path) -> subprocess.CompletedProcess:
    """The command with `-n` right after the program, so that it reads every word as typed."""
    dry = [] if {"-n", "--dry-run"} & set(shown.argv) else ["-n"]
    command = [sys.executable, "-m", "snakemake", *dry, *shown.argv[1:]]
    return subprocess.run(command, cwd=cwd, env=os.environ | dict(shown.env), capture_output=True, text=True)


@pytest.mark.parametrize("shown", params([c for c in shown_commands() if is_snakemake(c)]))
def test_every_snakemake_command_builds_its_dag(shown: Shown, clone: Path) -> None:
    run = dry_run(shown, clone)
    assert run.returncode == 0, f"{shown.where}: {shown.text}\n{run.stderr[-2000:]}"
    # --unlock reads the workflow and exits before any DAG; every other command lists its jobs.
    done = "Unlocked working directory." if "--unlock" in shown.argv else "This was a dry-run"
    assert done in run.stdout + run.stderr, f"{shown.where}: {shown.text}"


def test_the_dry_run_fails_on_the_configfile_trap(clone: Path) -> None:
    """The test itself would have caught the README's old paper command."""
    (trap,) = commands_in(f"```bash\n{TRAP}\n```\n", "README.md before issue 19")
    run = dry_run(trap, clone)
    assert run.returncode != 0 and "No such file or directory: 'results/figures/fig3.pdf'" in run.stdout + run.stderr


def test_a_json_target_read_as_a_config_file_is_named_with_the_fix(tmp_path: Path) -> None:
    """The one form of the trap that reaches the workflow: a target Snakemake can read as a config (a
    summary.json) would otherwise fail as unknown config keys (`model`, `test_acc`)."""
    target = tmp_path / "results" / "cifar10" / "resnet14" / "seed0" / "dense" / "summary.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"model": "resnet14", "test_acc": 0.9}))
    # -s: the working directory holds the target, which the trap reads relative to it, and no workflow.
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "--cores", "1", "--configfile",
               str(ROOT / "config" / "paper" / "cifar10-resnet.yaml"), str(target.relative_to(tmp_path))]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    output = run.stdout + run.stderr
    assert run.returncode == 1 and len(output.splitlines()) < 15, output[-2000:]
    assert "results/cifar10/resnet14/seed0/dense/summary.json was read as a config file" in output
    assert "write --configfile=FILE" in output


def test_the_readmes_show_the_commands_this_test_runs() -> None:
    """The extraction reads fenced blocks, their `export`s, inline spans and config comments."""
    texts = {c.text for c in shown_commands()}
    assert ".venv/bin/snakemake --cores 8 --configfile=config/paper/cifar10-resnet.yaml results/figures/fig3.pdf" \
        in texts
    assert "snakemake --cores 1 --configfile=config/proxy/transfer-fashion-digits.yaml" in texts
    assert "snakemake --cores 8 --configfile=config/paper/cifar10-resnet-lmc.yaml results/figures/fig7.pdf" in texts
    slurm = next(c for c in shown_commands() if "workflow/profiles/slurm" in c.argv)
    assert dict(slurm.env) == {"ELTH_SLURM_PARTITION": "gpu", "ELTH_SLURM_ACCOUNT": "mylab"}


# `python -m elth...` commands: each runnable one has an example that writes what it reads and checks what it
# writes. Words the README leaves to the reader are replaced: NAME (the experiment) and /tmp/ (shared by every
# user of the machine; the test writes in its own directory).


def write_ticket(path: Path) -> None:
    """An IMP ticket of the model and dataset its path names (results/<dataset>/<model>/seed<s>/imp/level<k>/),
    random weights under a random half mask: the CLIs check shapes and metadata, not what was learned."""
    parts = re.fullmatch(r"results/([^/]+)/([^/]+)/seed(\d+)/imp/level(\d+)/ticket\.pt", str(path)).groups()
    dataset, model, seed, level = parts[0], parts[1], int(parts[2]), int(parts[3])
    net = build_for(model, dataset, seed=seed)
    params = dict(net.named_parameters())
    g = torch.Generator().manual_seed(seed)
    mask = Mask({n: torch.rand(params[n].shape, generator=g) < 0.5 for n in prunable(net)})
    mask.apply_(net)
    meta = {"method": "imp", "level": level, "seed": seed}
    Checkpoint(model, dataset, 0, net.state_dict(), mask, meta).save_ticket(path)


def prepare_aggregate(cwd: Path, argv: tuple[str, ...]) -> dict[str, str]:
    """The pieces `--include` joins: the committed proxy study's runs, one piece per seed."""
    runs = pd.read_csv(ROOT / "reports" / "proxy-fashion-mnist" / "tables" / "runs.csv", keep_default_na=False)
    pieces = [Path(argv[i + 1]) for i, word in enumerate(argv) if word == "--include"]
    for piece, seed in zip(pieces, sorted(set(runs["seed"])), strict=True):
        (cwd / piece).parent.mkdir(parents=True)
        runs[runs["seed"] == seed].to_csv(cwd / piece, index=False)
    return {"NAME": runs["experiment"].iloc[0]}


def check_aggregate(cwd: Path, run: subprocess.CompletedProcess) -> None:
    runs = pd.read_csv(ROOT / "reports" / "proxy-fashion-mnist" / "tables" / "runs.csv", keep_default_na=False)
    assert len(pd.read_csv(cwd / "results" / "tables" / "runs.csv")) == len(runs)
    assert (cwd / "results" / "tables" / "summary.csv").stat().st_size > 0


def prepare_ticket(cwd: Path, argv: tuple[str, ...]) -> dict[str, str]:
    write_ticket(Path(argv[3]))  # the first argument after `python -m elth.<cli>`, relative to cwd
    return {}


def check_ticket(cwd: Path, run: subprocess.CompletedProcess) -> None:
    assert (cwd / "tmp" / "ticket.pt").is_file() and (cwd / "tmp" / "ticket.json").is_file()


# An MLP's line of 21 points, each with its BN statistics recomputed on 40 batches, takes seconds; a ResNet's, half
# a minute.
LMC_TICKET = Path("results/fashion-mnist/mlp2/seed0/imp/level1/ticket.pt")


def prepare_lmc(cwd: Path, argv: tuple[str, ...]) -> dict[str, str]:
    """Two copies of one tiny ticket (the second's kept weights moved), and a micro Fashion-MNIST in data/."""
    write_mnist_like(cwd / "data" / "FashionMNIST" / "raw")
    write_ticket(LMC_TICKET)
    ticket = Checkpoint.load(LMC_TICKET, "ticket")
    for copy, shift in zip(argv[3:5], (0.0, 0.1), strict=True):
        state = {k: v + shift * ticket.mask[k] if k in ticket.mask else v for k, v in ticket.state.items()}
        Checkpoint(ticket.model, ticket.dataset, 6, state, ticket.mask, ticket.meta).save(copy)
    return {}


def check_lmc(cwd: Path, run: subprocess.CompletedProcess) -> None:
    assert len(pd.read_csv(cwd / "interpolation.csv")) == 21 * 2  # the default alphas, both BN modes
    assert set(json.loads((cwd / "instability.json").read_text())["instability"]) == {"interpolated", "recomputed"}


def check_flops(cwd: Path, run: subprocess.CompletedProcess) -> None:
    """The README quotes the command's ratios: 2.76x to find the mask, 0.26x to train under it, 1.44x RigL 5x."""
    for row, ratio in (("E-LTH: find", "2.76"), ("E-LTH: train", "0.26"), ("RigL 5x", "1.44")):
        assert re.search(rf"^\| {re.escape(row)}.*\| {ratio} \|$", run.stdout, re.M), (row, run.stdout)


@dataclass(frozen=True)
class Example:
    """How a shown CLI runs here: what to write before (returning the placeholders' values) and what to check."""

    prepare: Callable[[Path, tuple[str, ...]], dict[str, str]]
    check: Callable[[Path, subprocess.CompletedProcess], None]


EXAMPLES = {
    "elth.report.aggregate": Example(prepare_aggregate, check_aggregate),
    "elth.transform": Example(prepare_ticket, check_ticket),
    "elth.transfer": Example(prepare_ticket, check_ticket),
    "elth.lmc": Example(prepare_lmc, check_lmc),
    "elth.flops": Example(lambda cwd, argv: {}, check_flops),
}
# Spans that name a CLI with the flags its rule passes, in the "How it works" table and the proxy report's account
# of how its pieces were joined: references, not commands to type. The DAG tests run each through its rule
# (tests/test_dag.py, test_together.py, test_lmc.py, test_rigl.py; the IMP rounds, the dense run's pruning of
# level 1 and the baselines' one process also in test_imp_count.py and test_baselines.py). A module named
# without arguments is the same.
FLAGS_ONLY = {
    "python -m elth.train --next-ticket",
    "python -m elth.train --ticket",
    "python -m elth.train --ticket --data-seed",
    "python -m elth.train --ticket --next-ticket",
    "python -m elth.baseline METHOD...",
    "python -m elth.train --ticket a --out a --ticket b --out b ...",
    "python -m elth.train --data-seed n --ticket a --out a/lmc/noisen ...",
    "python -m elth.dst --like",
    "python -m elth.report.aggregate --include",
}


def python_params() -> list:
    marked = []
    for c in (c for c in shown_commands() if not is_snakemake(c)):
        reference = len(c.argv) == 3 or " ".join(c.argv) in FLAGS_ONLY
        marks = [pytest.mark.skip(reason=f"names a CLI a rule runs, in {c.where}")] if reference else []
        marked.append(pytest.param(c, id=c.text, marks=marks))
    return marked


@pytest.mark.parametrize("shown", python_params())
def test_every_python_command_runs_on_the_files_it_names(shown: Shown, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    module = shown.argv[2]
    assert module in EXAMPLES, f"{shown.where} shows `{shown.text}`: give it an example here, or a reason not to run it"
    monkeypatch.chdir(tmp_path)
    values = EXAMPLES[module].prepare(tmp_path, shown.argv)
    words = [values.get(w, str(tmp_path / "tmp" / w[5:]) if w.startswith("/tmp/") else w) for w in shown.argv[3:]]
    run = subprocess.run([sys.executable, "-m", module, *words], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, f"{shown.where}: {shown.text}\n{run.stderr[-2000:]}"
    EXAMPLES[module].check(tmp_path, run)
