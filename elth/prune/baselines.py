"""Pruning baselines, each matched to the sparsity of the IMP ticket it is compared with.

Every method has one signature: it takes the model holding the rewind weights, the IMP mask it is
compared with (`reference`: the baseline keeps exactly as many weights, over the same prunable
layers), a source of mini-batches, and a generator, and returns a mask. As the paper does (Sec 4,
after Frankle et al. 2020b), every baseline is applied to the rewind weights, not the init.

- `reinit`: the IMP mask; the weights are re-drawn from the model's initialiser (in place), with
  a seed stream of their own.
- `random`: the IMP mask permuted within each layer, so per-layer sparsities are kept. Where its
  weights start (`RANDOM_STARTS` in elth/prune/mask.py) is the caller's choice (elth/baseline.py).
- `magnitude`: one-shot global magnitude pruning of the rewind weights.
- `snip` (Lee et al. 2019): keep the largest |g * w|, g summed over the given mini-batches.
- `grasp` (Wang et al. 2020): S = -w * Hg, with Hg the Hessian-gradient product by double backprop
  and logits divided by the original's temperature 200. `ranking="wang"` removes the highest S, as
  Wang et al. do; `ranking="elasticlth"` keeps the largest |S|, as the authors' port
  (pruning/grasp_global.py of VITA-Group/ElasticLTH) does: it keeps the weights of the highest S,
  the ones Wang et al. remove first, and removes those of S near 0.
- `synflow` (Tanaka et al. 2020): data-free and iterative: on |w|, with an all-ones input, score
  |w * dR/dw| for R the sum of the output, and prune in `iterations` rounds to densities
  d^(k/iterations), as the paper's exponential schedule does. On a ViT, eval mode does not make the
  network linear in |w| as it does a BN network: LayerNorm still normalises every token, so
  SynFlow's conservation of flow holds only approximately there; its scores are still computed and
  ranked the same way.

SNIP and GraSP score with the model in `mode` `train` (batch statistics: the default, the mode a
network is built in, as both methods were made to score one at its init) or `eval` (the rewind
point's BN running statistics, which scoring then leaves untouched: how the authors' ports ran,
training/train.py's `accumulate` and `grasp`). Their batches are any re-iterable: GraSP reads them
twice, so a one-shot iterator is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from elth.errors import ConfigError
from elth.models.init import initialize
from elth.prune.magnitude import keep_top
from elth.prune.mask import Mask

Batches = Iterable[tuple[Tensor, Tensor]]
GRASP_TEMPERATURE = 200.0
MODES = ("train", "eval")
GRASP_RANKINGS = ("wang", "elasticlth")


def _params(model: nn.Module, reference: Mask) -> dict[str, Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n] for n in reference}


def reinit(model: nn.Module, reference: Mask, batches: Batches, generator: torch.Generator) -> Mask:
    initialize(model, generator)
    return Mask(reference.to_dict())


def random(model: nn.Module, reference: Mask, batches: Batches, generator: torch.Generator) -> Mask:
    out = {}
    for n, m in reference.items():
        flat = m.flatten()
        out[n] = flat[torch.randperm(flat.numel(), generator=generator)].view_as(m)
    return Mask(out)


def magnitude(model: nn.Module, reference: Mask, batches: Batches, generator: torch.Generator) -> Mask:
    return keep_top({n: p.detach().abs() for n, p in _params(model, reference).items()}, reference.remaining)


def _gradients(model: nn.Module, weights: dict[str, Tensor], batches: Batches) -> dict[str, Tensor]:
    grads = {n: torch.zeros_like(w) for n, w in weights.items()}
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        for n, g in zip(weights, torch.autograd.grad(loss, list(weights.values()))):
            grads[n] += g
    return grads


def _set_mode(model: nn.Module, mode: str) -> None:
    """Put `model` in the scoring mode: in `eval`, BN normalises by (and keeps) its running statistics."""
    if mode not in MODES:
        raise ConfigError(f"scoring mode {mode!r}: expected one of {MODES}")
    model.train(mode == "train")


def snip(model: nn.Module, reference: Mask, batches: Batches, generator: torch.Generator, mode: str = "train") -> Mask:
    _set_mode(model, mode)
    weights = _params(model, reference)
    grads = _gradients(model, weights, batches)
    return keep_top({n: (grads[n] * w).abs() for n, w in weights.items()}, reference.remaining)


def grasp_scores(model: nn.Module, weights: dict[str, Tensor], batches: Batches,
                 temperature: float = GRASP_TEMPERATURE) -> dict[str, Tensor]:
    """-w * Hg (Wang et al. 2020, Alg. 1): g = dL/dw summed over the batches (no graph), then
    Hg = d(g . dL/dw)/dw by double backprop, with logits divided by `temperature`. Reads `batches`
    twice, one pass per product, so a whole epoch never has to be held in memory."""
    if isinstance(batches, Iterator):
        raise TypeError("GraSP reads its batches twice: pass a list or a re-iterable, not a one-shot iterator")
    params = list(weights.values())
    g = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        loss = F.cross_entropy(model(x) / temperature, y)
        for acc, grad in zip(g, torch.autograd.grad(loss, params)):
            acc += grad
    hg = [torch.zeros_like(p) for p in params]
    # A ViT's attention: the fused kernels have no double backward; the plain one does.
    with sdpa_kernel(SDPBackend.MATH):
        for x, y in batches:
            loss = F.cross_entropy(model(x) / temperature, y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            z = sum((gi * gj.detach()).sum() for gi, gj in zip(grads, g))
            for acc, h in zip(hg, torch.autograd.grad(z, params)):
                acc += h
    return {n: -(w.detach() * h) for (n, w), h in zip(weights.items(), hg)}


def grasp(model: nn.Module, reference: Mask, batches: Batches, generator: torch.Generator, mode: str = "train",
          ranking: str = "wang") -> Mask:
    if ranking not in GRASP_RANKINGS:
        raise ConfigError(f"GraSP ranking {ranking!r}: expected one of {GRASP_RANKINGS}")
    _set_mode(model, mode)
    scores = grasp_scores(model, _params(model, reference), batches)
    if ranking == "wang":
        # Wang et al. remove the highest scores: keeping the lowest is keeping the top of -score.
        return keep_top({n: -s for n, s in scores.items()}, reference.remaining)
    # The port divides w * Hg by |sum| before ranking |score|: a positive factor, which changes no rank.
    return keep_top({n: s.abs() for n, s in scores.items()}, reference.remaining)


def synflow(model: nn.Module, reference: Mask, batches: Batches, generator: torch.Generator,
            iterations: int = 100, input_shape: tuple[int, ...] | None = None) -> Mask:
    """Data-free: `batches` gives only the input shape, when `input_shape` is not given. Scores a
    copy of the model in float64 and eval mode, so the caller's model is untouched."""
    if input_shape is None:
        x, _ = next(iter(batches))
        input_shape = tuple(x.shape[1:])
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.dtype.is_floating_point:
                p.abs_()
    weights = _params(net, reference)
    linear = {n: w.detach().clone() for n, w in weights.items()}
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=next(net.parameters()).device)
    density = reference.remaining / reference.total
    mask = Mask({n: torch.ones_like(m) for n, m in reference.items()})
    for k in range(1, iterations + 1):
        with torch.no_grad():
            for n, w in weights.items():
                w.copy_(linear[n] * mask[n].to(w.device))
        grads = torch.autograd.grad(net(ones).sum(), list(weights.values()))
        # Pruned weights score -1: below every surviving weight, so a round never revives one.
        scores = {n: (g * w).detach().abs().masked_fill(~mask[n].to(w.device), -1.0)
                  for (n, w), g in zip(weights.items(), grads)}
        keep = reference.remaining if k == iterations else round(reference.total * density ** (k / iterations))
        mask = keep_top(scores, keep)
    return mask


METHODS: dict[str, Callable[..., Mask]] = {"reinit": reinit, "random": random, "magnitude": magnitude,
                                           "snip": snip, "grasp": grasp, "synflow": synflow}
