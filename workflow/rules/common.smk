# Config loading and validation, and the input functions of every rule.
import glob
import hashlib
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from elth import config as study
from elth.errors import ConfigError

min_version("9.0")

# With --configfile, that file is the whole study: the demo's values must not leak into it, so
# config.yaml is read only when no config file is given on the command line.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "../schemas/config.schema.yaml", set_default=True)
try:
    study.check(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Rules run the elth CLIs with the interpreter that runs snakemake, so the environment that has
# snakemake (the .venv of setup.sh) is the one that trains, without activating anything.
PY = sys.executable
DATASET = config["dataset"]["name"]
MODELS = config["models"]
SEEDS = config["seeds"]
LEVELS = range(1, config["pruning"]["levels"] + 1)
RUN = "results/{dataset}/{model}/seed{seed}"
ETT = {(source, target, scheme): spec for source, target, scheme, spec in study.ett_jobs(config)}
# Ticket directories under a run that the shared retraining rule serves.
TICKETS = r"imp/level\d+|ett/from-[^/]+/[^/]+/level\d+|baselines/[a-z]+/level\d+"
BASELINES = config["baselines"]["methods"]


def fingerprint(*paths):
    """A digest of a stage's own source files, passed as a rule param: Snakemake reruns a job whose
    params changed, so editing a module reruns the stages that use it and nothing upstream (its
    own code trigger sees only the rule body, not imported modules)."""
    digest = hashlib.sha256()
    for path in paths:
        root = os.path.join(workflow.basedir, path)
        files = sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)) if os.path.isdir(root) else [root]
        for f in files:
            digest.update(os.path.relpath(f, workflow.basedir).encode())
            with open(f, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


# What every stage that builds a model from a checkpoint runs (checkpoint.py reads data.py's table).
COMMON_CODE = ("elth/errors.py", "elth/io.py", "elth/checkpoint.py", "elth/data.py", "elth/models", "elth/prune/mask.py")
CODE = {
    "data": fingerprint("elth/data.py", "elth/errors.py", "elth/io.py"),
    "train": fingerprint("elth/train.py", "elth/recipe.py", *COMMON_CODE),
    "imp": fingerprint("elth/imp.py", "elth/prune/magnitude.py", *COMMON_CODE),
    "ett": fingerprint("elth/transform", *COMMON_CODE),
    "baseline": fingerprint("elth/baseline.py", "elth/prune/baselines.py", "elth/prune/magnitude.py", *COMMON_CODE),
    "report": fingerprint("elth/report", "elth/io.py"),
}


wildcard_constraints:
    dataset="fashion-mnist|mnist|cifar10|svhn|imagenet",
    model=r"[a-z0-9][a-z0-9.-]*",
    source=r"[a-z0-9][a-z0-9.-]*",
    scheme=r"[a-z0-9][a-z0-9.+-]*",
    method="reinit|random|magnitude|snip|grasp|synflow",
    seed=r"\d+",
    level=r"[1-9]\d*",


def run_dir(model, seed):
    return RUN.format(dataset=DATASET, model=model, seed=seed)


def dense_summaries():
    return [f"{run_dir(m, s)}/dense/summary.json" for m in MODELS for s in SEEDS]


def imp_summaries():
    return [f"{run_dir(m, s)}/imp/level{k}/summary.json" for m in MODELS for s in SEEDS for k in LEVELS]


def ett_summaries():
    return [f"{run_dir(t, s)}/ett/from-{src}/{scheme}/level{k}/summary.json"
            for (src, t, scheme) in ETT for s in SEEDS for k in LEVELS]


def baseline_summaries():
    return [f"{run_dir(m, s)}/baselines/{b}/level{k}/summary.json" for m in MODELS for s in SEEDS for k in LEVELS
            for b in BASELINES]


def all_summaries():
    return dense_summaries() + imp_summaries() + ett_summaries() + baseline_summaries()


def ett_spec(wildcards):
    try:
        return ETT[(wildcards.source, wildcards.model, wildcards.scheme)]
    except KeyError:
        raise WorkflowError(
            f"no ETT scheme {wildcards.scheme!r} for {wildcards.source}->{wildcards.model} in the config's `ett`"
        ) from None


def imp_inputs(wildcards):
    """Level k prunes what level k-1 learned (level 0: the dense run) and rewinds to the dense run."""
    run = RUN.format(**wildcards)
    k = int(wildcards.level)
    inputs = {"rewind": f"{run}/dense/rewind.pt"}
    if k == 1:
        inputs["trained"] = f"{run}/dense/final.pt"
    else:
        inputs["trained"] = f"{run}/imp/level{k - 1}/final.pt"
        inputs["previous"] = f"{run}/imp/level{k - 1}/ticket.pt"
    return inputs


def train_params(wildcards):
    return {"recipe": study.recipe_json(config, wildcards.model), "data": study.data_json(config)}


def gpus():
    """GPUs a training job holds: bound jobs sharing GPUs with --resources gpu=N."""
    return 0 if config["resources"]["device"] == "cpu" else 1
