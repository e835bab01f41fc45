"""torch.optim's SGD and AdamW, without the import of torch._dynamo that their first call costs.

Every method of a torch.optim optimizer that the engine calls (`add_param_group` in its constructor,
`zero_grad`, `step`, `state_dict`, `load_state_dict`) is wrapped by torch so that torch.compile leaves
it alone, and that wrapper imports torch._dynamo the first time it runs: 1.2-2 s of every training
job's start on a CPU, about half of `import torch` itself (cProfile of `python -m elth.train`). The
engine never compiles an optimizer step (`engine.compile` compiles the forward only), so these
subclasses call the methods torch wraps, each under the gradient mode its wrapper sets, and compute
exactly what torch.optim computes: the same code, the same foreach kernels, the same state.
Where a torch version does not wrap a method this way, the method is torch's own.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.optim import Optimizer


def _unwrapped(method):  # noqa: ANN001, ANN202 (any optimizer method)
    """The function under torch's wrappers (`_disable_dynamo`, `_use_grad_for_differentiable`, and the
    profiling hook a torch optimizer's constructor puts around its class's `step`): functools.wraps
    records each wrapped function as `__wrapped__`. A method torch does not wrap is itself."""
    return inspect.unwrap(method)


class _Eager:
    """The optimizer methods the engine calls, without their lazy import of torch._dynamo."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _unwrapped(Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _unwrapped(Optimizer.zero_grad)(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _unwrapped(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _unwrapped(Optimizer.load_state_dict)(self, state_dict)

    def step(self, closure=None):  # noqa: ANN001, ANN201 (torch's signature)
        base = next(c for c in type(self).__mro__ if c.__module__.startswith("torch.optim") and "step" in vars(c))
        # torch's wrapper runs the step with gradients off (unless the optimizer is `differentiable`).
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _unwrapped(vars(base)["step"])(self, closure)


class SGD(_Eager, torch.optim.SGD):
    """torch.optim.SGD, eagerly (see the module's docstring)."""


class AdamW(_Eager, torch.optim.AdamW):
    """torch.optim.AdamW, eagerly (see the module's docstring)."""
