"""Checkpoints and tickets: the files that pass between the stages of the DAG.

A checkpoint is a model's state (parameters and BN buffers) at a training step, with the model
and dataset it belongs to, and the mask it was trained under, if any. A ticket has the same
fields but is a starting point: the rewind weights and the mask a retraining run starts from. The
file says which it is, so a trained checkpoint is never mistaken for a ticket. Both record `meta` (method, level, source, scheme, seed), which
retraining copies into its results so the aggregated table can say what each run was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from elth import data as datasets
from elth import files, io
from elth.errors import CheckpointError
from elth.models.registry import build
from elth.prune.mask import Mask


@dataclass
class Checkpoint:
    model: str
    dataset: str
    step: int
    state: dict[str, Tensor]
    mask: Mask | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path, kind: str = "checkpoint") -> None:
        """Save atomically as a `checkpoint` (a state to evaluate or prune) or a `ticket` (a start)."""
        payload = {"model": self.model, "dataset": self.dataset, "step": self.step,
                   "state": {k: v.detach().cpu() for k, v in self.state.items()}, "meta": self.meta}
        if self.mask is not None:
            payload["mask"] = self.mask.to_dict()
        io.save(path, kind, payload)

    def save_ticket(self, path: str | Path, **extra: Any) -> None:
        """Save as a ticket, with a JSON beside it (same name, .json) that a person can read: the
        model, step, meta, global and per-layer sparsity, and whatever `extra` the maker adds. The
        global sparsity comes in both conventions (`Mask.summary`), which needs the model's layers
        the mask leaves out, so the model is built (untrained: only its shapes count)."""
        if self.mask is None:
            raise CheckpointError(f"{path}: a ticket needs a mask")
        self.save(path, "ticket")
        summary = self.mask.summary(build_for(self.model, self.dataset))
        files.write_json(Path(path).with_suffix(".json"), {"model": self.model, "dataset": self.dataset,
                                                            "step": self.step, **self.meta, **summary, **extra})

    @classmethod
    def load(cls, path: str | Path, kind: str = "checkpoint", model: str | None = None, dataset: str | None = None) -> Checkpoint:
        """Load and check a checkpoint (or ticket); `model` and `dataset`, if given, must match."""
        obj = io.load(path, kind)
        for key in ("model", "dataset", "step", "state"):
            if key not in obj:
                raise CheckpointError(f"{path}: has no {key!r} entry; it was not written by elth")
        ckpt = cls(obj["model"], obj["dataset"], int(obj["step"]), obj["state"],
                   Mask(obj["mask"]) if "mask" in obj else None, obj.get("meta", {}))
        if ckpt.mask is not None:
            for name, t in ckpt.mask.items():
                if name not in ckpt.state or t.shape != ckpt.state[name].shape:
                    shape = tuple(ckpt.state[name].shape) if name in ckpt.state else "absent"
                    raise CheckpointError(f"{path}: mask entry {name!r} has shape {tuple(t.shape)} but the weight's is "
                                          f"{shape}: the mask belongs to another model. Delete it and rerun the rule that makes it.")
        if model is not None and ckpt.model != model:
            raise CheckpointError(f"{path}: is a {ckpt.model} {kind}, expected {model}")
        if dataset is not None and ckpt.dataset != dataset:
            raise CheckpointError(f"{path}: was made on {ckpt.dataset}, expected {dataset}")
        return ckpt

    def build_model(self) -> nn.Module:
        """The model this checkpoint belongs to, with its state loaded (and checked)."""
        model = build_for(self.model, self.dataset)
        self.load_into(model)
        return model

    def load_into(self, model: nn.Module, where: str = "checkpoint") -> None:
        expected = model.state_dict()
        missing = sorted(set(expected) - set(self.state))
        extra = sorted(set(self.state) - set(expected))
        if missing or extra:
            raise CheckpointError(f"{where}: does not fit {self.model}: missing {missing[:3]}, unexpected {extra[:3]}")
        for k, v in self.state.items():
            if v.shape != expected[k].shape:
                raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, the model's is {tuple(expected[k].shape)}")
        model.load_state_dict(self.state)
        if self.mask is not None:
            self.mask.check(model, where)


def build_for(model: str, dataset: str, seed: int | None = None) -> nn.Module:
    """Build `model` with the input and output shape of `dataset`."""
    d = datasets.info(dataset)
    return build(model, d.in_channels, d.num_classes, in_features=d.in_features, seed=seed)
