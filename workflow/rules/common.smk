# Config loading and validation, and the input functions of every rule.
import functools
import glob
import hashlib
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod
from snakemake.utils import min_version

from elth import config as study
from elth import schema
from elth.errors import ConfigError
from elth.files import write_json
from elth.transform.spec import Plan, plan_for

min_version("9.0")

# With --configfile, that file is the whole study: the demo's values must not leak into it, so
# config.yaml is read only when no config file is given on the command line.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


# `--configfile A results/x` reads the target as a config file too (the flag takes every later word). A .pdf, .md
# or .csv target fails inside Snakemake before this file runs, where nothing of elth's can catch it; a .json one
# (a summary.json) arrives here as config keys, so name the fix rather than its keys.
_TARGETS_READ_AS_CONFIG = [p for p in map(os.path.relpath, workflow.overwrite_configfiles)
                           if p.split(os.sep)[0] == "results"]
if _TARGETS_READ_AS_CONFIG:
    raise WorkflowError(f"{_TARGETS_READ_AS_CONFIG[0]} was read as a config file: --configfile takes every word "
                        "after it; write --configfile=FILE, or put the targets before --configfile")
# The schema's defaults are filled in as Snakemake's validate(set_default=True) fills them, but a schema failure
# is one line naming the key, what it expects and the nearest valid key, where Snakemake's validate prints the
# whole schema and config after it.
try:
    schema.validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
    config["engine"]["tickets_per_job"] = study.tickets_per_job(config)  # `auto` resolved once, for every rule
    study.check(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Every shell command runs after this prefix (Snakemake's own `set -euo pipefail` first), which defines the two
# commands the rules use, so that no shell command names a global (as `snakemake --lint` asks).
# - `python`: with --use-conda, the rule's conda environment's (environment.yml); otherwise the interpreter that
#   runs snakemake, so the environment that has snakemake (the .venv of setup.sh) is the one that trains, without
#   activating anything (a function, not a PATH entry: the directory of sys.executable may hold another python).
# - `slurm_job`: under SLURM, opens each rule's log with the job's SLURM id (what tests/test_slurm.py checks); run
#   anywhere else, it prints nothing.
_PYTHON = "" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else (
    f'python() {{ {shlex.quote(sys.executable)} "$@"; }}; ')
_SLURM_JOB = 'slurm_job() { printf "${SLURM_JOB_ID:+slurm job $SLURM_JOB_ID on ${SLURMD_NODENAME:-?}\\n}"; }; '
# - ELTH_MODULES: the config's `modules` (families of the user's own module, elth/models/user.py), so that every
#   job reads their model names as the DAG did.
_MODULES = study.module_environment(config)
_USER_MODULES = f"export ELTH_MODULES={shlex.quote(_MODULES)}; " if _MODULES else ""
shell.prefix(f"set -euo pipefail; {_PYTHON}{_SLURM_JOB}{_USER_MODULES}".replace("{", "{{").replace("}", "}}"))

DATASET = config["dataset"]["name"]
MODELS = config["models"]
SEEDS = config["seeds"]
LEVELS = range(1, config["pruning"]["levels"] + 1)
# The levels every other kind of ticket is compared at (pruning.compare_at; default: all).
COMPARED = study.compared_levels(config)
RUN = "results/{dataset}/{model}/seed{seed}"
ETT = {(source, target, scheme): spec for source, target, scheme, spec in study.ett_jobs(config)}
# Ticket directories under a run that the shared retraining rule serves (all of them, unless
# engine.tickets_per_job > 1 gives the ETT and baseline tickets to together.smk's grouped rules).
# IMP's tickets always retrain alone, so each IMP round waits only for its own model's previous
# round, never for the chains of the models its ETTs come from; so do a dataset transfer's. Every
# IMP level but the last retrains in imp.smk's rounds, each making the next level's ticket.
FUSED_LEVELS = range(1, config["pruning"]["levels"])
_IMP = f"imp/level{config['pruning']['levels']}"
_TRANSFER = r"transfer/from-[^/]+/[^/]+/[^/]+/level\d+"
TICKETS = rf"{_IMP}|ett/from-[^/]+/[^/]+/level\d+|baselines/[a-z]+/level\d+|{_TRANSFER}"
RETRAIN_ALONE = TICKETS if config["engine"]["tickets_per_job"] == 1 else rf"{_IMP}|{_TRANSFER}"
# IMP's chain (dense training, each round's pruning and, when it retrains alone, its retraining) is
# the study's critical path: every ETT and baseline of a level waits for it. Snakemake starts the
# ready jobs of higher priority first, so with fewer cores than ready jobs a chain never waits
# behind the stacked tickets of a level it has already passed (on 2 cores the proxy's last level-5
# chain once ran after the level-3 groups). `retrain` is part of the chain only when it serves
# IMP's and transferred tickets alone.
CHAIN_PRIORITY = 1
RETRAIN_PRIORITY = 0 if config["engine"]["tickets_per_job"] == 1 else CHAIN_PRIORITY
BASELINES = config["baselines"]["methods"]
# Dataset transfer (Table 4): (source model, target model, scheme) -> spec, from the dataset
# `transfer.from` names onto the study's.
TRANSFER = {(source, target, scheme): spec for source, target, scheme, spec in study.transfer_jobs(config)}
TRANSFER_FROM = config["transfer"]["from"]["name"] if TRANSFER else None


def fingerprint(*paths, exclude=()):
    """A digest of a stage's own source files, passed as a param of the rules: Snakemake reruns a job whose
    params changed, so editing a module reruns the stages that use it and nothing upstream (its
    own code trigger sees only the rule body, not imported modules). `exclude` leaves out files whose
    effect a rule states more precisely as a param of its own (the ETT plan, for the spec parser)."""
    digest = hashlib.sha256(_MODULES.encode())  # a declared module family is part of every stage's code
    skip = {os.path.join(workflow.basedir, path) for path in exclude}
    for path in paths:
        root = os.path.join(workflow.basedir, path)
        files = sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)) if os.path.isdir(root) else [root]
        for f in (f for f in files if f not in skip):
            digest.update(os.path.relpath(f, workflow.basedir).encode())
            with open(f, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


SPEC_PARSER = "elth/transform/spec.py"
# What every stage that builds a model from a checkpoint runs (checkpoint.py reads data.py's table).
COMMON_CODE = ("elth/errors.py", "elth/files.py", "elth/io.py", "elth/checkpoint.py", "elth/data.py", "elth/datasets.py",
               "elth/models", "elth/prune/mask.py", "elth/gpus.py", *study.module_sources(config))
CODE = {
    "data": fingerprint("elth/data.py", "elth/datasets.py", "elth/errors.py", "elth/files.py", "elth/io.py"),
    "train": fingerprint("elth/train.py", "elth/recipe.py", "elth/stack.py", *COMMON_CODE),
    "imp": fingerprint("elth/imp.py", "elth/prune/magnitude.py", *COMMON_CODE),
    # The spec parser is left out: each ETT and transfer job carries its resolved plan as a param, so a
    # change in how specs read reruns exactly the jobs whose plan it changes, not every transformation.
    "ett": fingerprint("elth/transform", *COMMON_CODE, exclude=[SPEC_PARSER]),
    "baseline": fingerprint("elth/baseline.py", "elth/prune/baselines.py", "elth/prune/magnitude.py", *COMMON_CODE),
    "report": fingerprint("elth/report", "elth/files.py", "elth/models/names.py"),
    "dst": fingerprint("elth/dst", "elth/train.py", "elth/recipe.py", "elth/stack.py", "elth/prune/magnitude.py",
                       *COMMON_CODE),
    "flops": fingerprint("elth/flops.py", "elth/dst", "elth/recipe.py", "elth/prune/magnitude.py",
                         "elth/report/html.py", *COMMON_CODE),
    "lmc": fingerprint("elth/lmc.py", "elth/train.py", *COMMON_CODE),
    "transfer": fingerprint("elth/transfer.py", "elth/transform", *COMMON_CODE, exclude=[SPEC_PARSER]),
}


wildcard_constraints:
    dataset="fashion-mnist|mnist|cifar10|svhn|digits|imagenet",
    from_dataset="fashion-mnist|mnist|cifar10|svhn|digits|imagenet",
    model=r"[a-z0-9][a-z0-9.-]*",
    source=r"[a-z0-9][a-z0-9.-]*",
    scheme=r"[a-z0-9][a-z0-9.+-]*",
    method="reinit|random|magnitude|snip|grasp|synflow",
    dst=r"rigl(\d+x)?",
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
            for (src, t, scheme) in ETT for s in SEEDS for k in COMPARED]


def baseline_summaries():
    return [f"{run_dir(m, s)}/baselines/{b}/level{k}/summary.json" for m in MODELS for s in SEEDS for k in COMPARED
            for b in BASELINES]


RIGL = config.get("rigl")
RIGL_METHODS = [("rigl" if m == 1 else f"rigl{m}x") for m in RIGL["multipliers"]] if RIGL else []


def rigl_summaries():
    return [f"{run_dir(m, s)}/dst/{method}/level{k}/summary.json" for m in MODELS for s in SEEDS for k in COMPARED
            for method in RIGL_METHODS]


def rigl_multiplier(wildcards):
    """The RigL run's training-length multiplier from its method name (`rigl` 1, `rigl5x` 5): the name is
    the wildcard, so the multiplier is read back from it rather than kept beside it."""
    return 1 if wildcards.dst == "rigl" else int(wildcards.dst[4:-1])


def flops_tables():
    """Sec 4.6's FLOPs comparison for every transfer pair, with a `rigl` section."""
    pairs = sorted({(src, t) for (src, t, _) in ETT}) if RIGL else []
    return [f"results/tables/flops/{src}-to-{t}.md" for src, t in pairs]


def transfer_summaries():
    """The retraining of every transferred ticket, on the study's dataset. The source dataset's own
    runs are only their inputs: runs.csv, the figures and the tables stay of one dataset."""
    return [f"{run_dir(t, s)}/transfer/from-{TRANSFER_FROM}/{src}/{scheme}/level{k}/summary.json"
            for (src, t, scheme) in TRANSFER for s in SEEDS for k in COMPARED]


def all_summaries():
    return (dense_summaries() + imp_summaries() + ett_summaries() + baseline_summaries() + rigl_summaries()
            + transfer_summaries())


# Linear mode connectivity: the (model, ticket directory) pairs the optional `lmc` section names.
LMC_TICKETS = study.lmc_tickets(config)
LMC_SEEDS = study.lmc_seeds(config)


def lmc_results(name):
    """`name` (interpolation.csv or instability.json) of every interpolation the `lmc` section asks for."""
    return [f"{run_dir(m, s)}/{ticket}/lmc/noise{a}-{b}/{name}" for m, ticket in LMC_TICKETS for s in LMC_SEEDS
            for a, b in config["lmc"]["noise_seeds"]]


def lmc_targets():
    """What the default target adds with an `lmc` section: every interpolation, Fig 7 and the table."""
    if not LMC_TICKETS:
        return []
    return lmc_results("instability.json") + ["results/figures/fig7.pdf", "results/tables/lmc.md"]


def report_pages():
    """The HTML page of every table the default target makes, for Snakemake's report: targets of their
    own, so that a page missing beside its markdown (a study that ran before the pages existed) is made."""
    tables = ["table2", "table3", "claims", "benchmarks"]
    tables += (["table4"] if TRANSFER else []) + (["lmc"] if LMC_TICKETS else [])
    return [f"results/tables/{t}.html" for t in tables] + [f[:-len(".md")] + ".html" for f in flops_tables()]


class Paths(tuple):
    """Paths read without depending on them, as one param of a rule; a shell command gets every path,
    Snakemake's report and job record their count (a paper study's benchmark files are 5,000 paths,
    which the report would print in full beside its table). So a new list of the same length is no
    params change: the rule that reads them has inputs that change with it."""

    def __repr__(self):
        return f"<{len(self)} paths>"

    __str__ = __repr__


def benchmark_files():
    """The benchmark file of every job of the default target that trains, scores or transforms (the
    rules' `benchmark:` paths, which mirror their logs under benchmarks/ and end in the rule's name):
    what `benchmarks` reads into benchmarks.csv. A param of that rule, not its input, so a missing
    file (a job that ran before benchmarks were recorded) is reported there instead of rerunning the
    job."""
    def bench(result, name):  # results/<dir>/<file> -> benchmarks/<dir>/<name>.tsv
        return f"benchmarks/{os.path.dirname(result)[len('results/'):]}/{name}.tsv"

    alone = config["engine"]["tickets_per_job"] == 1
    stacked = () if alone else ("retrain",)  # ETT and baseline tickets retrain in together.smk's groups
    files = [f"benchmarks/{DATASET}/prepare_data.tsv"]
    files += [bench(os.path.dirname(s), "dense") for s in dense_summaries()]
    runs = [f"benchmarks/{DATASET}/{m}/seed{s}" for m in MODELS for s in SEEDS]
    files += [f"{run}/imp/level{k}/{'imp_round' if k in FUSED_LEVELS else 'retrain'}.tsv" for run in runs for k in LEVELS]
    files += [bench(s, rule) for s in ett_summaries() for rule in ("ett", "retrain") if rule not in stacked]
    files += [bench(s, "retrain") for s in baseline_summaries() if not stacked]
    files += [f"benchmarks/{DATASET}/{m}/seed{s}/baselines/level{k}/baselines.tsv" for m in MODELS for s in SEEDS
              for k in COMPARED] if BASELINES else []
    files += [bench(s, "rigl") for s in rigl_summaries()]
    files += [bench(s, rule) for s in transfer_summaries() for rule in ("transfer", "retrain")]
    if TRANSFER:  # the source dataset's check, dense runs and IMP rounds up to the last level transferred
        last = max(COMPARED)
        sources = sorted({src for src, _, _ in TRANSFER})
        runs = [f"benchmarks/{TRANSFER_FROM}/{m}/seed{s}" for m in sources for s in SEEDS]
        files += [f"benchmarks/{TRANSFER_FROM}/prepare_data.tsv"] + [f"{run}/dense.tsv" for run in runs]
        files += [f"{run}/imp/level{k}/imp_round.tsv" for run in runs for k in range(1, last)]
    if not alone:
        files += [f"benchmarks/{DATASET}/{m}/seed{s}/together/level{k}-group{g}.tsv" for m in MODELS
                  for g in range(len(ticket_groups(m))) for s in SEEDS for k in COMPARED]
    if LMC_TICKETS:  # a copy per noise seed but the run's own (its retraining), and each interpolation
        noise = sorted({n for pair in config["lmc"]["noise_seeds"] for n in pair})
        if alone:
            files += [f"benchmarks/{DATASET}/{m}/seed{s}/{ticket}/lmc/noise{n}/lmc_copy.tsv"
                      for m, ticket in LMC_TICKETS for s in LMC_SEEDS for n in noise if n != s]
        else:
            files += [f"benchmarks/{DATASET}/{m}/seed{s}/lmc/level{k}-group{g}-noise{n}.tsv"
                      for m, k, g, _ in lmc_ticket_groups() for s in LMC_SEEDS for n in noise if n != s]
        files += [bench(r, "lmc") for r in lmc_results("instability.json")]
    files += [bench(f, os.path.basename(f)[:-len(".md")]) for f in flops_tables()]
    return Paths(files)


def benchmark_groups():
    """What each job of several tickets makes, which its benchmark file's path does not say: the methods
    of every `baselines` job; per model, the ticket kinds of each group of together.smk (by group
    number), and per `model/level<k>`, the tickets of each group of linear mode connectivity's copies;
    as JSON for the CLI."""
    if config["engine"]["tickets_per_job"] == 1:
        return json.dumps({"baselines": BASELINES})
    lmc = {}
    for m, k, _, tickets in lmc_ticket_groups():
        lmc.setdefault(f"{m}/level{k}", []).append(tickets)
    return json.dumps({"baselines": BASELINES, "together": {m: ticket_groups(m) for m in MODELS}, "lmc": lmc})


def ett_spec(wildcards):
    try:
        return ETT[(wildcards.source, wildcards.model, wildcards.scheme)]
    except KeyError:
        raise WorkflowError(
            f"no ETT scheme {wildcards.scheme!r} for {wildcards.source}->{wildcards.model} in the config's `ett`"
        ) from None


@functools.cache
def resolved_plan(spec, source, target):
    """The plan `spec` reads as from `source` to `target` (checked when the config was)."""
    return plan_for(spec, source, target)


def ett_plan(wildcards):
    """The ETT's plan written out (per stage, the source unit of every target unit): a param, so a
    change in how a spec reads reruns the transformations whose plan changed, and only those."""
    return resolved_plan(ett_spec(wildcards), wildcards.source, wildcards.model).explicit()


def transfer_plan(wildcards):
    """A transferred ticket's ETT plan written out, as `ett_plan` ('' for a direct transfer)."""
    if wildcards.source == wildcards.model:
        return ""
    return resolved_plan(transfer_spec(wildcards), wildcards.source, wildcards.model).explicit()


def ett_random_start(wildcards):
    """`--random-start` for an ETT whose spec ends in ` - Random` (its replicas' masks permuted), ''
    for every other: `random_start` changes no other ETT, so changing it reruns no other."""
    plan = resolved_plan(ett_spec(wildcards), wildcards.source, wildcards.model)
    return f"--random-start {config['random_start']}" if isinstance(plan, Plan) and plan.random else ""


def method_options(method, model):
    """The options of `method` alone, as flags of `elth.baseline` ('' for a method that reads none)."""
    b = config["baselines"]
    if method == "random":
        return f"--random-start {config['random_start']}"
    if method in ("snip", "grasp"):
        batch_size = study.recipe(config, model)["batch_size"]
        options = f"--batch-size {batch_size} --batches {b['batches']} --mode {b['mode']}"
        return options + (f" --grasp {b['grasp']}" if method == "grasp" else "")
    if method == "synflow":
        return f"--iterations {b['synflow_iterations']}"
    return ""


def baselines_options(wildcards):
    """The options of every method of the `baselines` job, each flag once (SNIP and GraSP share theirs)."""
    flags = {}
    for method in BASELINES:
        words = shlex.split(method_options(method, wildcards.model))
        flags.update(zip(words[::2], words[1::2]))
    return " ".join(f"{flag} {value}" for flag, value in flags.items())


def baseline_settings(wildcards):
    """Everything that makes a baseline method's tickets of one model besides the inputs of the shared
    `baselines` job: its options, the baselines' code, and for the scoring methods their device and
    the data options their mini-batches come from. The param of `baseline_settings`' file."""
    method = wildcards.method
    return {"method": method, "options": method_options(method, wildcards.model), "code": CODE["baseline"],
            "device": config["resources"]["device"] if method in SCORED_BASELINES else "cpu",
            "data": study.data_json(config, wildcards.dataset) if method in ("snip", "grasp") else ""}


def settings_file(dataset, model, method):
    return f"results/{dataset}/{model}/baselines/{method}.json"


def write_settings(path, settings, log):
    """Write a settings file atomically (elth.files, torch-free), in Snakemake's process, and say so in the job's
    log."""
    write_json(path, settings)
    with open(log, "w") as handle:
        handle.write(f"{settings['method']} settings -> {path}: {json.dumps(settings, sort_keys=True)}\n")


def ticket_input(wildcards):
    """A retraining's ticket. A baseline's is read as `ancient`, beside the IMP ticket it matches and its
    method's settings file: a rerun of the level's shared `baselines` job (another method's settings
    changed) rewrites every method's ticket but retrains only the methods whose IMP ticket or settings
    changed, which are what make a ticket (baselines.smk)."""
    run = RUN.format(dataset=wildcards.dataset, model=wildcards.model, seed=wildcards.seed)
    ticket = f"{run}/{wildcards.ticket}/ticket.pt"
    if not wildcards.ticket.startswith("baselines/"):
        return {"ticket": ticket}
    _, method, level = wildcards.ticket.split("/")
    return {"ticket": ancient(ticket), "reference": f"{run}/imp/{level}/ticket.pt",
            "settings": settings_file(wildcards.dataset, wildcards.model, method)}


# SNIP, GraSP and SynFlow score on the job's device (a GPU where the study uses one); the other
# baselines only permute or re-draw, on the CPU: a `baselines` job of those alone holds no GPU.
SCORED_BASELINES = ("snip", "grasp", "synflow")
BASELINES_SCORE = bool(set(BASELINES) & set(SCORED_BASELINES))


def imp_pruning_flags(wildcards):
    """How an IMP round prunes (fraction, count rule, the model's unpruned layers), as the flags of both
    commands that prune: `elth.train --next-ticket` after the dense run (level 1) and after every IMP
    round but the last, and `elth.imp`, the same pruning on its own."""
    unpruned = " ".join(f"'{p}'" for p in study.unpruned(config, wildcards.model))
    return (f"--fraction {config['pruning']['fraction']} --count {config['pruning']['count']}"
            f" --unpruned {unpruned}")


# IMP's first round, made by the dense job in its own process when the study prunes at all.
IMP_LEVEL1 = {"level1_ticket": f"{RUN}/imp/level1/ticket.pt", "level1_info": f"{RUN}/imp/level1/ticket.json"} if LEVELS else {}


def dense_next_ticket(wildcards):
    """The dense job's flags that prune its trained weights into level 1's ticket (none without IMP). A
    function of the wildcards alone: Snakemake compares such params with the last run's (a function of
    `output` is left out of that comparison, so a new pruning setting would not rerun the job)."""
    if not LEVELS:
        return ""
    ticket = IMP_LEVEL1["level1_ticket"].format(**dict(wildcards.items()))
    return f"--next-ticket {ticket} {imp_pruning_flags(wildcards)}"


ENGINE = config["engine"]
ENGINE_FLAGS = f"--precision {ENGINE['precision']}" + (" --compile" if ENGINE["compile"] else "")


def train_params(wildcards):
    """Recipe, engine and the options of the run's own dataset (the study's, or `transfer.from`'s)."""
    return {"recipe": study.recipe_json(config, wildcards.model), "data": study.data_json(config, wildcards.dataset),
            "engine": ENGINE_FLAGS}


def transfer_spec(wildcards):
    try:
        return TRANSFER[(wildcards.source, wildcards.model, wildcards.scheme)]
    except KeyError:
        raise WorkflowError(f"no transfer {wildcards.source}->{wildcards.model} under scheme {wildcards.scheme!r} "
                            "in the config's `transfer`") from None


def ticket_groups(model):
    """The ticket kinds of `model` at one level that stack (each ETT into it, each baseline) in the
    groups of up to engine.tickets_per_job that together.smk retrains in one job each."""
    kinds = [f"ett/from-{s}/{scheme}" for (s, t, scheme) in ETT if t == model] + [f"baselines/{b}" for b in BASELINES]
    size = ENGINE["tickets_per_job"]
    return [kinds[i:i + size] for i in range(0, len(kinds), size)]


def lmc_ticket_groups():
    """The `lmc` section's tickets in groups of up to engine.tickets_per_job of one model and level,
    as (model, level, group number, ticket directories): lmc.smk trains each group's copies under
    one noise seed in one job, the copies sharing every batch as each copy alone would read it."""
    by_level = {}
    for model, ticket in LMC_TICKETS:
        by_level.setdefault((model, int(ticket.rpartition("level")[2])), []).append(ticket)
    size = ENGINE["tickets_per_job"]
    return [(model, level, i // size, tickets[i:i + size]) for (model, level), tickets in by_level.items()
            for i in range(0, len(tickets), size)]


def lmc_setting(key):
    """A setting of the `lmc` section, read when a job needs it, so a study without the section
    never reads it."""
    if "lmc" not in config:
        raise WorkflowError("linear mode connectivity needs an `lmc` section in the config (see the schema)")
    return config["lmc"][key]


def trained_copy(end):
    """The input function of one end (`a` or `b`) of an interpolation: the ticket's own retraining
    when that end's noise seed is the run's seed (`retrain` trains under the run's seed as its data
    seed, so a copy would repeat it), else the copy trained under that noise seed (by `lmc_copy`, or
    with engine.tickets_per_job > 1 stacked with its level's other copies)."""

    def path(w):
        run = RUN.format(dataset=w.dataset, model=w.model, seed=w.seed)
        noise = w[end]
        if int(noise) == int(w.seed):
            return f"{run}/{w.ticket}/final.pt"
        return f"{run}/{w.ticket}/lmc/noise{noise}/final.pt"

    return path


# ---------------------------------------------------------------------------------------------------
# Job sizes: the resources every rule declares. On a workstation, `--resources gpu=N` bounds the GPU
# jobs (elth/gpus.py gives each its own device); under --executor slurm they become sbatch options:
# runtime (-t, minutes), mem_mb (--mem), threads (--cpus-per-task), gpu and gpu_model (--gpus),
# slurm_partition (-p) and slurm_account (-A). A job's size is the config's resources.sizes of its
# kind, overridden by its model's family and then its model; merged once per model, so a DAG of
# thousands of jobs pays at most a cached lookup per job and resource.
# ---------------------------------------------------------------------------------------------------
SIZES = config["resources"]["sizes"]
for _model in SIZES["models"]:
    if _model not in MODELS:
        raise WorkflowError(f"config key resources.sizes.models: {_model} is not in `models` {MODELS}")
# The environment names the partition and account of the cluster at hand, over the study's config.
SLURM_PARTITION = os.environ.get("ELTH_SLURM_PARTITION") or config["resources"]["slurm_partition"]
SLURM_ACCOUNT = os.environ.get("ELTH_SLURM_ACCOUNT") or config["resources"]["slurm_account"]


@functools.cache
def job_size(kind, model=None):
    """The size of a `kind` job (train, ticket or other) of `model`: its kind's, then its family's
    and its model's overrides, field by field. Cached: every job of a model shares one (read-only)."""
    size = dict(SIZES[kind])
    if model is not None:
        for override in (SIZES["families"].get(study.family(model), {}), SIZES["models"].get(model, {})):
            size.update(override.get(kind, {}))
    size.setdefault("partition", SLURM_PARTITION)
    return size


def gpus():
    """GPUs a training job holds: bound jobs sharing GPUs with --resources gpu=N."""
    return 0 if config["resources"]["device"] == "cpu" else 1


def sized(kind, gpu=0, model=None, runs=1):
    """A rule's resources (`resources: **sized("train", gpus())`): the size of its kind, for train
    and ticket jobs that of the job's model (its `model` wildcard, or `model` for a rule made for
    one), and `gpu` GPUs. The executor asks for one CPU per thread (--cpus-per-task) by itself.
    `runs` multiplies the runtime for a job that trains that many tickets stacked, which can take
    up to that many runs' time where one would not fill the device."""

    def field(key):
        # A value no family or model overrides is one constant for every job: cheaper than a
        # function Snakemake calls per job, in a DAG of thousands.
        overrides = (*SIZES["families"].values(), *SIZES["models"].values())
        if kind == "other" or model is not None or not any(key in o.get(kind, {}) for o in overrides):
            return job_size(kind, model).get(key)
        return lambda wildcards: job_size(kind, wildcards.model).get(key)

    resources = {"runtime": by_attempt(field("runtime"), runs), "mem_mb": field("mem_mb")}
    resources.update(gpu=gpu, slurm_partition=field("partition"), slurm_account=SLURM_ACCOUNT)
    if gpu:
        resources["gpu_model"] = field("gpu_model")
    return resources


def by_attempt(runtime, runs):
    """`runs` times a runtime (a number, or a function of the wildcards) times the job's attempt.
    The SLURM profile's retries resubmit a job killed at its time limit with twice its time, then
    three times, and a training job continues from its resume.pt: a size set too tight costs a
    resubmission, not a failed study. Elsewhere, and on every first attempt, attempt is 1."""
    if callable(runtime):
        return lambda wildcards, attempt: runtime(wildcards) * runs * attempt
    return lambda wildcards, attempt: runtime * runs * attempt
