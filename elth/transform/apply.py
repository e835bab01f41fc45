"""Apply any spec to a ticket: the entry point of Elastic Ticket Transformations."""

from __future__ import annotations

from elth.checkpoint import Checkpoint
from elth.transform.depth import stretch_or_squeeze
from elth.transform.spec import Plan, WidthPlan, plan_for
from elth.transform.width import widen_or_shrink


def transform(ticket: Checkpoint, target: str, spec: str, seed: int = 0,
              random_start: str = "rewind") -> tuple[Checkpoint, dict[str, str], Plan | WidthPlan]:
    """The ticket `spec` makes of `ticket` on model `target`, its key mapping, and the plan.
    `random_start` (elth/prune/mask.py's RANDOM_STARTS) matters to ` - Random` depth specs alone."""
    plan = plan_for(spec, ticket.model, target)
    if isinstance(plan, WidthPlan):
        out, mapping = widen_or_shrink(ticket, target, plan, seed)
    else:
        out, mapping = stretch_or_squeeze(ticket, target, plan, seed, random_start)
    return out, mapping, plan
