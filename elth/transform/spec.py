"""The spec language of Elastic Ticket Transformations, and the per-stage plans it denotes.

A plan says, for every stage, which source unit each target unit copies: `plan[s][j] = i` means
target unit j of stage s takes every tensor of source unit i of stage s. Specs name plans the way
the paper does (App. A, Figs 4, 5, 9-13):

- `Append 12`: the listed blocks are copied again, as a whole, right after the last of them (the
  paper, Sec 3.1: the replicated blocks "are appended as a whole after the last replicated block"):
  ResNet-32's B0..B4 become B0 B1 B2 B1 B2 B3 B4, as the authors' map `0:0;1:1,3;2:2,4;3:5;4:6`.
  `Append` alone appends every elastic block (after the stage's last, where the two readings meet).
- `Inter 1234`: each listed block is followed right away by its copy (B0 B1 B1 B2 B2 ...). For one
  block, Append and Inter are the same (Sec 4.1: "appending interpolating the first block yields
  the same resulting model").
- `xm` after the indices: each listed block appears m times in all (`Inter 12x4`: B1 B1 B1 B1
  B2 B2 B2 B2; `Append 12x3` from ResNet-32: B0 B1 B2 B1 B2 B1 B2 B3 B4). Without it, m = 2. A
  count that no m reaches (ResNet-50 -> 101, stage 3: 6 -> 23 units, 17 copies of 5 blocks) is
  refused with the nearest valid spec. Inter steps compose to any count (`Inter 12x5, Inter 345x4`);
  an Append group is copied as a whole, so an uneven stretch is the default's or an explicit map.
- `Drop 34`: remove the listed source blocks.
- Steps compose left to right with commas: `Inter 12x2, Append` interpolates, then appends the
  result (B0 B1 B1 B2 B2 B1 B1 B2 B2). Indices always name source blocks.
- ` - Random` at the end: the masks of the replicated copies are permuted within each layer
  (Fig 4's control); the first occurrence of each source block keeps its mask.
- `default`: the paper's defaults (App. A): to stretch, append the earliest elastic blocks,
  as many distinct blocks as possible, as few times as possible; to squeeze, drop the latest. When
  the extra count is not a multiple of the elastic blocks, the appended group is whole rounds of
  them, then the earliest once more (ResNet-50 -> 101, stage 3: B0-B5, then B1-B5 three times, B1 B2).
- `0:0;1:1,3;2:2,4`: the original code's explicit map, source index to target positions.
- One spec serves every stage; `|` separates per-stage specs (`Append 1 | Append 12 | default`).
  A target stage without units (a VGG's classifier with one linear layer) takes an empty part.

The authors' scripts replay verbatim. A VGG map of five `|` parts (their form: the conv stages)
carries the classifier over unchanged when source and target have the same head. A VGG map of one
explicit part is their VGG-FC form (`cifar_vggnfc_change_depth.sh`): it maps the classifier only
and counts the slots of their classifier's `nn.Sequential`, where Linear and ReLU alternate, so
Linear layer k is slot 2k (`0:0,2;2:4,6` is elth's `0:0,1;1:2,3`); an odd slot is refused with
the layer-index form in the message. Every plan's explicit form (`Plan.explicit`, saved in each
ETT's ticket.json) parses back to the same plan.

Indices are digits (`1234`), or dot-separated when one exceeds 9 (`1.2.10`). Block 0 of a ResNet
stage, the first conv after a VGG pooling, and an MLP's input layer are fixed: they are never
replicated or dropped. This module does not import torch, so the DAG checks every configured
transformation before any job starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from elth.errors import ConfigError
from elth.models.names import check_pair, layout, parse, width

_STEP = re.compile(r"(append|inter|drop)(?:\s+([0-9.]+?)(?:x(\d+))?)?", re.I)
_RANDOM = re.compile(r"\s*-\s*random\s*$", re.I)
_MAP = re.compile(r"\d+:\d+(,\d+)*(;\d+:\d+(,\d+)*)*")


@dataclass(frozen=True)
class Plan:
    """Per stage, the source unit index of every target unit; and whether replicas get random masks."""

    stages: tuple[tuple[int, ...], ...]
    random: bool = False

    def explicit(self) -> str:
        """The plan in the original code's explicit form, one `src:dst,...` map per stage (empty for a
        stage without units), with ` - Random` when the replicas' masks are permuted: the spec
        that `depth_plan` reads back into this plan."""
        maps = []
        for stage in self.stages:
            targets: dict[int, list[int]] = {}
            for j, i in enumerate(stage):
                targets.setdefault(i, []).append(j)
            maps.append(";".join(f"{i}:{','.join(map(str, js))}" for i, js in sorted(targets.items())))
        return " | ".join(maps) + (" - Random" if self.random else "")

    def replicas(self, stage: int) -> list[int]:
        """Target positions in `stage` that repeat a source unit already used earlier in the stage."""
        seen: set[int] = set()
        out = []
        for j, i in enumerate(self.stages[stage]):
            if i in seen:
                out.append(j)
            seen.add(i)
        return out


def _indices(text: str) -> list[int]:
    """'135' is units 1, 3 and 5; with a dot, '10.12' is units 10 and 12, and '10.' unit 10 alone."""
    return [int(t) for t in text.split(".") if t] if "." in text else [int(c) for c in text]


def _name(indices: list[int]) -> str:
    """The inverse of `_indices` (a lone unit past 9 keeps a trailing dot, or it would read as digits)."""
    if all(i <= 9 for i in indices):
        return "".join(map(str, indices))
    return ".".join(map(str, indices)) + ("." if len(indices) == 1 else "")


def default_stage(fixed: tuple[bool, ...], n_target: int) -> list[int]:
    """App. A's default for one stage: to stretch, the earliest elastic blocks round-robin (as many
    distinct blocks as possible, as few times as possible), appended as a whole right after the
    last block they replicate; to squeeze, keep the first `n_target` blocks (drop the latest)."""
    n_source = len(fixed)
    if n_target <= n_source:
        return list(range(n_target))
    elastic = [i for i, f in enumerate(fixed) if not f]
    extra = n_target - n_source
    if not elastic:
        raise ConfigError("has no replicable unit (its only units are fixed)")
    copies = [elastic[k % len(elastic)] for k in range(extra)]
    end = max(copies) + 1
    return list(range(end)) + copies + list(range(end, n_source))


def default_name(fixed: tuple[bool, ...], n_target: int) -> str:
    """The default for one stage as a named spec where it has one, else as an explicit map."""
    n_source = len(fixed)
    elastic = [i for i, f in enumerate(fixed) if not f]
    if n_target == n_source:
        return "default"
    if n_target < n_source:
        return f"Drop {_name(list(range(n_target, n_source)))}"
    extra = n_target - n_source
    if elastic and extra <= len(elastic):
        return f"Append {_name(elastic[:extra])}"
    if elastic and extra % len(elastic) == 0:
        return f"Append {_name(elastic)}x{1 + extra // len(elastic)}"
    return Plan((tuple(default_stage(fixed, n_target)),)).explicit()


def _append(seq: list[int], picked: set[int], times: int) -> list[int]:
    """`seq` with its picked blocks, in their order, repeated as a whole `times - 1` more times right
    after the last of them (Sec 3.1: "appended as a whole after the last replicated block")."""
    group = [i for i in seq if i in picked]
    if not group:
        return seq
    end = max(j for j, i in enumerate(seq) if i in picked) + 1
    return seq[:end] + group * (times - 1) + seq[end:]


def _apply_steps(text: str, fixed: tuple[bool, ...]) -> list[int]:
    seq = list(range(len(fixed)))
    for raw in text.split(","):
        step = raw.strip()
        m = _STEP.fullmatch(step)
        if not m:
            raise ConfigError(f"cannot read step {step!r}: expected Append/Inter [indices][xm] or Drop indices")
        op, idx, times = m[1].lower(), m[2], int(m[3]) if m[3] else 2
        chosen = _indices(idx) if idx else None
        if op == "drop" and chosen is None:
            raise ConfigError("Drop needs the indices of the blocks to drop, e.g. 'Drop 34'")
        if times < 2:
            raise ConfigError(f"step {step!r}: x{times} would replicate nothing; use x2 or more")
        for i in chosen or []:
            if i >= len(fixed):
                raise ConfigError(f"step {step!r}: index {i} is past the stage's {len(fixed)} source units (0..{len(fixed) - 1})")
            if fixed[i]:
                raise ConfigError(f"step {step!r}: unit {i} is fixed (a stage's entry block or a width-changing "
                                  f"layer); only {[j for j, f in enumerate(fixed) if not f]} may be replicated or dropped")
        picked = {i for i, f in enumerate(fixed) if not f and (chosen is None or i in chosen)}
        if op == "append":
            seq = _append(seq, picked, times)
        elif op == "inter":
            seq = [k for i in seq for k in ([i] * times if i in picked else [i])]
        else:
            seq = [i for i in seq if i not in chosen]
    return seq


def _explicit_stage(text: str, n_source: int, n_target: int) -> list[int]:
    plan: list[int | None] = [None] * n_target
    for part in text.split(";"):
        src, dsts = part.split(":")
        if int(src) >= n_source:
            raise ConfigError(f"map {text!r}: source unit {src} is past the stage's {n_source} units")
        for d in dsts.split(","):
            if int(d) >= n_target:
                raise ConfigError(f"map {text!r}: target position {d} is past the target stage's {n_target} units")
            if plan[int(d)] is not None:
                raise ConfigError(f"map {text!r}: target position {d} is given twice")
            plan[int(d)] = int(src)
    missing = [j for j, i in enumerate(plan) if i is None]
    if missing:
        raise ConfigError(f"map {text!r}: target positions {missing} have no source")
    return plan  # type: ignore[return-value]


def depth_plan(spec: str, source: str, target: str) -> Plan:
    """The plan that `spec` denotes from model `source` to model `target`, checked against both."""
    src, tgt = parse(source), parse(target)
    if src.family != tgt.family:
        raise ConfigError(f"cannot transform {source} ({src.family}) into {target} ({tgt.family}): "
                          "tickets transform only within one family")
    if width(source) != width(target):
        raise ConfigError(f"{source} -> {target} changes the width ({width(source)} to {width(target)}): a depth "
                          "spec keeps it; use a width spec ('widen replicate', 'widen gaussian 0.01', 'widen permute' or 'shrink')")
    src_layout, tgt_layout = layout(source), layout(target)
    if len(src_layout) != len(tgt_layout):
        raise ConfigError(f"{source} has {len(src_layout)} stages and {target} {len(tgt_layout)}: stages are kept")
    text = spec.strip()
    random = bool(_RANDOM.search(text))
    text = _RANDOM.sub("", text)
    parts = _stage_parts(spec, text, src.family, src_layout, tgt_layout)
    # A spec without '|' is one part for every stage: say so, or "stage 0" reads as a part the user never wrote.
    one_for_all = "|" not in text and len(set(parts)) == 1 < len(parts)
    shared = f" (its one part applies to each of the {len(parts)} stages)" if one_for_all else ""
    stages = []
    for s, (part, fixed, tfixed) in enumerate(zip(parts, src_layout, tgt_layout)):
        where = f"spec {spec!r}{shared}, stage {s} ({source}: {len(fixed)} units -> {target}: {len(tfixed)})"
        try:
            if not part:
                if tfixed:
                    raise ConfigError("an empty part is only for a target stage without units; write 'default' or a map")
                seq = []
            elif part.lower() == "default":
                seq = default_stage(fixed, len(tfixed))
            elif _MAP.fullmatch(part.replace(" ", "")):
                seq = _explicit_stage(part.replace(" ", ""), len(fixed), len(tfixed))
            else:
                seq = _apply_steps(part, fixed)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        if len(seq) != len(tfixed):
            raise ConfigError(f"{where}: makes {len(seq)} units, {target} needs {len(tfixed)}; "
                              f"nearest valid: {_nearest(part, fixed, len(tfixed))!r}")
        for j, f in enumerate(tfixed):
            if f and (seq[j] != j or not fixed[j]):
                raise ConfigError(f"{where}: target unit {j} is fixed and must copy source unit {j}")
        for j, i in enumerate(seq):
            if not tfixed[j] and fixed[i]:
                raise ConfigError(f"{where}: target unit {j} would copy fixed unit {i}, whose shape differs")
        stages.append(tuple(seq))
    return Plan(tuple(stages), random)


def _stage_parts(spec: str, text: str, family: str, src_layout: tuple, tgt_layout: tuple) -> list[str]:
    """One spec text per stage. Besides one part for every stage or one per stage, a VGG takes the
    authors' two forms: five parts (the conv stages; the classifier carried over when source and
    target have the same head) and one explicit map of their VGG-FC classifier slots."""
    parts = [p.strip() for p in text.split("|")]
    n = len(src_layout)
    if family == "vgg" and len(parts) == n - 1:
        if len(src_layout[-1]) != len(tgt_layout[-1]):
            raise ConfigError(f"spec {spec!r} maps the {n - 1} conv stages only, but the classifier changes from "
                              f"{len(src_layout[-1])} to {len(tgt_layout[-1])} hidden linear layers: add a sixth "
                              "part for it (e.g. '| default')")
        return parts + ["default"]
    if family == "vgg" and len(parts) == 1 and _MAP.fullmatch(parts[0].replace(" ", "")):
        return _vgg_fc_parts(spec, parts[0].replace(" ", ""), src_layout, tgt_layout)
    if len(parts) not in (1, n):
        raise ConfigError(f"spec {spec!r} has {len(parts)} per-stage parts; the models have {n} stages")
    return parts * n if len(parts) == 1 else parts


def _vgg_fc_parts(spec: str, text: str, src_layout: tuple, tgt_layout: tuple) -> list[str]:
    """The authors' VGG-FC map (`cifar_vggnfc_change_depth.sh`, e.g. `0:0,2;2:4,6`): indices of the
    slots of their classifier's `nn.Sequential(Linear, ReLU, Linear, ReLU, ...)`, so Linear layer k
    is slot 2k. The conv stages must be equal; their maps never change them."""
    if src_layout[:-1] != tgt_layout[:-1]:
        raise ConfigError(f"spec {spec!r}: one explicit map for a VGG is the authors' VGG-FC form, which maps the "
                          "classifier only, but the conv stages differ: give one part per stage ('|'-separated)")
    pairs = [(int(a), [int(d) for d in b.split(",")]) for a, b in (p.split(":") for p in text.split(";"))]
    odd = sorted({i for a, ds in pairs for i in (a, *ds) if i % 2})
    if odd:
        raise ConfigError(f"spec {spec!r}: one explicit map for a VGG is read as the authors' VGG-FC form, which "
                          f"counts the slots of nn.Sequential(Linear, ReLU, ...), and slot {odd[0]} is a ReLU. For "
                          "linear-layer indices, give the classifier map as the sixth of six parts: "
                          f"'{' | '.join(['default'] * (len(src_layout) - 1))} | {text}'")
    layers = ";".join(f"{a // 2}:{','.join(str(d // 2) for d in ds)}" for a, ds in pairs)
    return ["default"] * (len(src_layout) - 1) + [layers]


def _nearest(part: str, fixed: tuple[bool, ...], n_target: int) -> str:
    """A valid spec close to `part`: the same step with the right multiplicity; for an Inter whose
    extra count is not a multiple of its blocks, two Inter steps with the earliest blocks one copy
    more (`_uneven_inter`); else the default (an Append group is copied whole, so it cannot be uneven)."""
    m = _STEP.fullmatch(part.split(",")[0].strip())
    n_source = len(fixed)
    if m and m[1].lower() in ("append", "inter") and m[2] and "," not in part:
        chosen = _indices(m[2])
        extra = n_target - n_source
        if extra > 0 and extra % len(chosen) == 0:
            times = 1 + extra // len(chosen)
            return f"{m[1].capitalize()} {_name(chosen)}" + (f"x{times}" if times > 2 else "")
        if extra > 0 and m[1].lower() == "inter":
            return _uneven_inter(chosen, extra)
    return default_name(fixed, n_target)


def _uneven_inter(chosen: list[int], extra: int) -> str:
    """Inter steps that add `extra` copies of the `chosen` blocks when no single `xm` can: each block
    as few times as possible, the earliest one copy more than the rest, as the default spreads its
    copies (6 -> 23 units from blocks 1-5: `Inter 12x5, Inter 345x4`)."""
    base, more = divmod(extra, len(chosen))
    steps = [(chosen[:more], base + 2), (chosen[more:], base + 1)]
    return ", ".join(f"Inter {_name(ix)}" + (f"x{t}" if t > 2 else "") for ix, t in steps if ix and t >= 2)


WIDTH_SPEC = re.compile(r"(widen)\s+(replicate|permute|gaussian)(?:\s+([0-9.eE-]+))?|(shrink)", re.I)


@dataclass(frozen=True)
class WidthPlan:
    """A width transformation: binary splitting (App. B, Fig 8) with a symmetry breaker, or its inverse."""

    mode: str  # replicate, gaussian, permute or shrink
    std: float = 0.0

    def explicit(self) -> str:
        """The plan as the spec that reads back into it (the noise std written out)."""
        if self.mode == "shrink":
            return "shrink"
        return f"widen {self.mode}" + (f" {self.std:g}" if self.mode == "gaussian" else "")


def width_plan(spec: str, source: str, target: str) -> WidthPlan:
    m = WIDTH_SPEC.fullmatch(spec.strip())
    if not m:
        raise ConfigError(f"cannot read width spec {spec!r}: expected 'widen replicate', 'widen gaussian STD', "
                          "'widen permute' or 'shrink'")
    src, tgt = parse(source), parse(target)
    if src.family != tgt.family or layout(source) != layout(target):
        raise ConfigError(f"width spec {spec!r}: {source} and {target} must be one family at one depth")
    ratio = width(target) / width(source)
    mode = (m[4] or m[2]).lower()
    if (mode == "shrink") != (ratio == 0.5) or ratio not in (0.5, 2.0):
        need = "half" if mode == "shrink" else "twice"
        raise ConfigError(f"width spec {spec!r}: {target} must be {need} as wide as {source} (it is x{ratio:g})")
    std = float(m[3]) if m[3] else (0.01 if mode == "gaussian" else 0.0)
    if std < 0:
        raise ConfigError(f"width spec {spec!r}: the noise std must be non-negative")
    return WidthPlan(mode, std)


def is_width_spec(spec: str) -> bool:
    return spec.strip().lower().startswith(("widen", "shrink"))


def plan_for(spec: str, source: str, target: str) -> Plan | WidthPlan:
    """The plan of any spec (depth or width) between two models, or a ConfigError saying why not (a pair
    no spec can join, such as two ViTs of different widths, whatever the spec; `names.check_pair`)."""
    check_pair(source, target)
    return width_plan(spec, source, target) if is_width_spec(spec) else depth_plan(spec, source, target)
