"""Datasets as tensors on the training device, with augmentation as batched tensor ops.

Every small dataset is read once and kept as one uint8 tensor on the device: CIFAR-10 and SVHN
through torchvision's own classes, which check the files; the MNIST family (Fashion-MNIST, MNIST)
from its four idx files by `read_idx`, since importing torchvision costs 1.6 s of the `prepare_data`
job every study starts with, and the format is a four-field header (torchvision still downloads them
when `download` is on). Each epoch draws its
shuffling, crop offsets and flips from a generator seeded by (seed, epoch) alone, so an epoch is
the same whether a run goes straight through or resumes at a step inside it. ImageNet does not fit
in memory and streams through `ImageFolder` and a DataLoader with the standard transforms.

The `prepare_data` rule decodes a dataset once into `results/<dataset>/splits.pt` (`write_splits`):
the uint8 tensors of both splits, or for ImageNet the list of its image files. Every job the DAG
runs is given that file (`splits` in its dataset options) and loads it, memory-mapped, in a
fraction of a second, so no job but `prepare_data` imports torchvision's dataset classes (a second
or two per process) or walks ImageNet's 1.3M files. Outside the DAG, without `splits`, a job reads
the files through torchvision as before.

Offline, Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package: its recompressed .gz
files fail torchvision's md5 check, so they are decompressed into `<root>/FashionMNIST/raw/`, where
torchvision loads them with `download=False`.
"""

from __future__ import annotations

import argparse
import gzip
import math
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from elth.datasets import DATASETS, LAST_BATCH, DatasetInfo, info, normalization, steps_per_epoch
from elth.errors import CheckpointError, ConfigError, DatasetMissing, cli_errors
from elth.files import atomic_path, write_json
from elth.io import save
from elth.io import load as load_file  # `load` here reads a dataset

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
AUGMENTATIONS = ("crop", "flip")


@dataclass
class Split:
    """One split as tensors: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


def unpack_debian_fashion_mnist(root: Path, source: Path = DEBIAN_FASHION_MNIST) -> bool:
    """Decompress Debian's Fashion-MNIST files into `<root>/FashionMNIST/raw/`; True if it did."""
    raw = root / "FashionMNIST" / "raw"
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if all((raw / n).is_file() for n in names) or not all((source / f"{n}.gz").is_file() for n in names):
        return False
    for n in names:
        if not (raw / n).is_file():
            with gzip.open(source / f"{n}.gz", "rb") as src, atomic_path(raw / n) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return True


def _missing(name: str, root: Path, download: bool, cause: str = "") -> DatasetMissing:
    d = info(name)
    ways = [
        "on a machine with internet, set `dataset: {download: true}` in the config" if name != "imagenet" else None,
        d.how.replace("<root>", str(root)),
        "or point `dataset.root` in the config at a directory that already holds it",
    ]
    tried = " (download was on and failed)" if download else ""
    detail = f" {cause}." if cause else ""
    lines = [f"dataset {name!r} not found{tried}: looked for {d.where} under {root.resolve()}.{detail}",
             "Provide it in one of these ways:"]
    lines += [f"  - {w}" for w in ways if w]
    return DatasetMissing("\n".join(lines))


DIGITS_TEST_FRACTION = 0.2


def digits_split(train: bool) -> Split:
    """scikit-learn's 1,797 8x8 digits (values 0-16), bilinearly upsampled to 28x28 and scaled to
    uint8 0-255, split 80/20 by a fixed permutation (seed 0): 1,437 training and 360 test images,
    the same on every machine, as no file fixes the split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = math.ceil(DIGITS_TEST_FRACTION * len(labels))  # 360, as train_test_split rounds
    idx = perm[n_test:] if train else perm[:n_test]
    return Split(images[idx].contiguous(), labels[idx])


def read_idx(path: Path) -> Tensor:
    """An idx file of unsigned bytes, the MNIST family's format, as a uint8 tensor of the shape its header
    gives: two zero bytes, the element type (0x08, unsigned byte), the number of dimensions, each
    dimension as a big-endian 32-bit integer, then the values (yann.lecun.com/exdb/mnist, "FILE FORMATS")."""
    raw = bytearray(path.stat().st_size)
    with path.open("rb") as handle:
        handle.readinto(raw)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DatasetMissing(f"{path}: not an idx file of unsigned bytes (it should start 00 00 08); "
                             "replace it with the dataset's decompressed file")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = struct.unpack(f">{dims}I", raw[4:header]) if len(raw) >= header else ()
    if len(shape) != dims or len(raw) - header != math.prod(shape):
        raise DatasetMissing(f"{path}: its header promises {dims} dimensions {list(shape)} but the file has "
                             f"{len(raw)} bytes (truncated?); replace it with the dataset's decompressed file")
    if not math.prod(shape):
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.frombuffer(raw, dtype=torch.uint8, offset=header).view(shape)


MNIST_FAMILY = ("fashion-mnist", "mnist")


def mnist_split(name: str, root: Path, train: bool) -> Split:
    """One split of an MNIST-family dataset from where torchvision keeps its files (`DatasetInfo.where`:
    `<root>/FashionMNIST/raw/`, `<root>/MNIST/raw/`), the same tensors its class reads from them."""
    raw = root / info(name).where
    prefix = "train" if train else "t10k"
    files = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise _missing(name, root, False, f"{', '.join(missing)} not in {raw}")
    images, labels = (read_idx(f) for f in files)
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise DatasetMissing(f"{raw}: {prefix} images of shape {list(images.shape)} do not match labels of shape "
                             f"{list(labels.shape)}; replace the files with the dataset's own")
    return Split(images.unsqueeze(1).contiguous(), labels.to(torch.int64))


def load_split(name: str, root: str | Path, train: bool, download: bool = False) -> Split:
    """Read one split of a small dataset into uint8 tensors: the MNIST family's idx files directly, the
    others through torchvision's class (which downloads, when asked, for every one of them)."""
    root = Path(root)
    if name == "digits":
        return digits_split(train)
    if name == "fashion-mnist":
        unpack_debian_fashion_mnist(root)
    if name in MNIST_FAMILY and not download:
        return mnist_split(name, root, train)
    from torchvision import (
        datasets,  # imported here: torchvision costs a second and a half per process
    )

    try:
        if name in MNIST_FAMILY:
            cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
            cls(str(root), train=train, download=True)  # fetches and checks the files, then read as above
            return mnist_split(name, root, train)
        if name == "cifar10":
            ds = datasets.CIFAR10(str(root), train=train, download=download)
            images, labels = torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(ds.targets)
        elif name == "svhn":
            ds = datasets.SVHN(str(root), split="train" if train else "test", download=download)
            images, labels = torch.from_numpy(ds.data), torch.from_numpy(ds.labels)
        else:
            raise DatasetMissing(f"dataset {name!r} has no in-memory loader; it streams (see `streaming_loader`)")
    except (RuntimeError, FileNotFoundError, OSError) as err:
        said = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise _missing(name, root, download, f"torchvision said: {said}" if said else "") from None
    return Split(images.contiguous().to(torch.uint8), labels.to(torch.int64))


def subset(split: Split, size: int | None) -> Split:
    """A fixed random subset (seed 0, the same for every run and model), or the split itself."""
    if size is None or size >= len(split):
        return split
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:size]
    return Split(split.images[idx], split.labels[idx])


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * seed + epoch)


def random_crop(images: Tensor, offsets: Tensor, pad: int) -> Tensor:
    """Pad a batch by `pad` zeros and cut each image at its own (row, col) offset. The padded batch is
    viewed as every window of the image's size (`unfold`, no copy) and one index picks each image's
    window, which copies only the output: 3x faster on the CPU than gathering with per-pixel row and
    column indices, and for an MLP on Fashion-MNIST the augmentation was a third of an epoch."""
    b, _, h, w = images.shape
    windows = F.pad(images, (pad, pad, pad, pad)).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    return windows[torch.arange(b, device=images.device), :, offsets[:, 0], offsets[:, 1]]


def eval_batch_size(device: torch.device) -> int:
    """The batch an evaluation pass reads: 1,000 images on a GPU; on a CPU 256, where 1,000 images of
    activations spill the caches (half-width ResNet-20, one thread, 10,000 images: 3.9-4.3 s in batches
    of 256, 5.5-6.2 s in batches of 1,000)."""
    return 256 if device.type == "cpu" else 1000


class DeviceData:
    """A dataset held on the training device, serving normalised, augmented batches: inputs
    normalised by `normalize`'s statistics (elth.datasets.normalization), and the last partial
    batch of an epoch dropped or kept by `last_batch` (elth.datasets.steps_per_epoch)."""

    def __init__(self, train: Split, test: Split, dataset: DatasetInfo, augment: tuple[str, ...], device: torch.device,
                 normalize: str = "dataset", last_batch: str = "drop") -> None:
        unknown = set(augment) - set(AUGMENTATIONS)
        if unknown:
            raise ConfigError(f"unknown augmentation {sorted(unknown)}; elth knows {AUGMENTATIONS}")
        if last_batch not in LAST_BATCH:
            raise ConfigError(f"last_batch {last_batch!r} is not one of {', '.join(LAST_BATCH)}")
        self.info = dataset
        self.augment = augment
        self.device = device
        self.last_batch = last_batch
        self.train = Split(train.images.to(device), train.labels.to(device))
        self.test = Split(test.images.to(device), test.labels.to(device))
        mean_, std_ = normalization(dataset, normalize)
        std = torch.tensor(std_, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(mean_, device=device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std)
        self._shift = mean / std
        self._test: tuple[int, list[tuple[Tensor, Tensor]]] | None = None

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 to float with the dataset's mean and std folded into one multiply-add, in
        channels_last layout (1.3-1.6x faster convolutions on CPU, the layout GPUs prefer too)."""
        # Written into a channels_last tensor, whose strides say so even with one channel (where
        # `.contiguous(memory_format=...)` of an NCHW tensor is a no-op that leaves them ambiguous).
        out = torch.empty(images.shape, device=images.device, memory_format=torch.channels_last)
        return torch.sub(images * self._scale, self._shift, out=out)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches per epoch: the full ones, and under `last_batch: keep` the partial last one."""
        return steps_per_epoch(len(self.train), batch_size, self.last_batch)

    def epoch(self, seed: int, epoch: int, batch_size: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of one epoch from batch `start` on, fixed by (seed, epoch) alone."""
        n = len(self.train)
        g = _epoch_generator(seed, epoch)
        perm = torch.randperm(n, generator=g).to(self.device)
        offsets = torch.randint(0, 9, (n, 2), generator=g).to(self.device) if "crop" in self.augment else None
        flips = (torch.rand(n, generator=g) < 0.5).to(self.device) if "flip" in self.augment else None
        for b in range(start, self.steps_per_epoch(batch_size)):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            x = self.train.images[idx]
            if offsets is not None:
                x = random_crop(x, offsets[idx], pad=4)
            if flips is not None:
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            yield self.normalize(x), self.train.labels[idx]

    def test_batches(self, batch_size: int | None = None) -> list[tuple[Tensor, Tensor]]:
        """The test set in batches (`eval_batch_size`), normalised once on first use and kept on the device:
        a run evaluates it after every epoch, and the same float tensors serve every evaluation (4 bytes per
        pixel: 123 MB for CIFAR-10's 10,000 test images)."""
        batch_size = batch_size or eval_batch_size(self.device)
        if self._test is None or self._test[0] != batch_size:
            batches = [(self.normalize(self.test.images[i:i + batch_size]), self.test.labels[i:i + batch_size])
                       for i in range(0, len(self.test), batch_size)]
            self._test = (batch_size, batches)
        return self._test[1]


def load(name: str, root: str | Path, device: torch.device, download: bool = False,
         train_subset: int | None = None, augment: tuple[str, ...] | None = None,
         normalize: str = "dataset", last_batch: str = "drop", splits: str | Path | None = None) -> DeviceData:
    """Load a small dataset onto `device`, ready for training: from the `splits` file that
    `prepare_data` wrote when given, else through torchvision."""
    d = info(name)
    if name == "imagenet":
        raise DatasetMissing("imagenet streams from disk; it has no in-memory form (use `streaming_loader`)")
    if splits is not None:
        saved = read_splits(splits, name)
        train, test = Split(*saved["train"]), Split(*saved["test"])
    else:
        train, test = load_split(name, root, True, download), load_split(name, root, False, download)
    train = subset(train, train_subset)
    return DeviceData(train, test, d, d.augment if augment is None else tuple(augment), device, normalize, last_batch)


def _image_folder(folder: Path, transform, samples: list | None = None):
    """torchvision's ImageFolder over `folder`; with `samples` (relative path, class index), the list
    `prepare_data` saved, instead of walking every file of the folder again."""
    from torchvision import datasets

    if samples is None:
        return datasets.ImageFolder(str(folder), transform)

    class Listed(datasets.ImageFolder):
        def make_dataset(self, directory, *args, **kwargs):  # noqa: ANN001, ANN202 (torchvision's signature)
            return [(str(Path(directory) / path), label) for path, label in samples]

    return Listed(str(folder), transform)


def streaming_loader(root: str | Path, train: bool, batch_size: int, workers: int, seed: int, epoch: int,
                     last_batch: str = "drop", samples: list | None = None) -> torch.utils.data.DataLoader:
    """ImageNet through torchvision's ImageFolder with the standard transforms and worker processes;
    a training epoch drops its last partial batch unless `last_batch` is `keep`. `samples`: the
    split's file list from `prepare_data`, so the loader does not list 1.3M files again."""
    from torchvision import transforms

    d = info("imagenet")
    folder = Path(root) / "imagenet" / ("train" if train else "val")
    if not folder.is_dir():
        raise _missing("imagenet", Path(root), False)
    normalize = transforms.Normalize(d.mean, d.std)
    if train:
        tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), normalize])
    else:
        tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    ds = _image_folder(folder, tf, samples)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=workers,
                                       drop_last=train and last_batch == "drop",
                                       generator=_epoch_generator(seed, epoch), pin_memory=torch.cuda.is_available(),
                                       persistent_workers=False)


def manifest(name: str, root: str | Path, download: bool = False) -> dict:
    """Check that a dataset is readable and describe it: what the `prepare_data` rule records."""
    return _read(name, root, download)[0]


def _read(name: str, root: str | Path, download: bool) -> tuple[dict, dict]:
    """The manifest of a dataset and what `write_splits` saves of it: the uint8 tensors of both
    splits, or ImageNet's file lists (relative path, class index) per split."""
    d = info(name)
    root = Path(root)
    if name == "imagenet":
        listed = {}
        for split in ("train", "val"):
            folder = root / "imagenet" / split
            if not folder.is_dir():
                raise _missing(name, root, download)
            listed[split] = [(str(Path(path).relative_to(folder)), label)
                             for path, label in _image_folder(folder, None).samples]
        return ({"dataset": name, "root": str(root.resolve()), "train": len(listed["train"]),
                 "test": len(listed["val"]), "in_channels": d.in_channels, "num_classes": d.num_classes,
                 "image_size": d.image_size}, {"train": listed["train"], "test": listed["val"]})
    train, test = load_split(name, root, True, download), load_split(name, root, False, download)
    for split, label in ((train, "train"), (test, "test")):
        if split.images.shape[1:] != (d.in_channels, d.image_size, d.image_size):
            raise DatasetMissing(f"dataset {name!r} {label} images have shape {tuple(split.images.shape[1:])}, "
                                 f"expected {(d.in_channels, d.image_size, d.image_size)}: the files under {root} are not {name}")
    return ({"dataset": name, "root": str(root.resolve()), "train": len(train), "test": len(test),
             "in_channels": d.in_channels, "num_classes": d.num_classes, "image_size": d.image_size,
             "classes_seen": int(train.labels.unique().numel())},
            {"train": (train.images, train.labels), "test": (test.images, test.labels)})


def write_splits(name: str, root: str | Path, download: bool, path: str | Path) -> dict:
    """Decode `name` once into `path` for every later job (see the module docstring); return its
    manifest. The file records the root it was read from."""
    found, splits = _read(name, root, download)
    save(path, "splits", {"dataset": name, "root": found["root"], **splits})
    return found


def read_splits(path: str | Path, name: str) -> dict:
    """What `write_splits` saved for `name`, the tensors memory-mapped rather than read whole."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no decoded dataset here; the prepare_data rule writes it (rerun it)")
    obj = load_file(path, "splits", mmap=True)
    if obj.get("dataset") != name:
        raise CheckpointError(f"{path}: is not the decoded {name} of prepare_data but {obj.get('dataset')}'s; "
                              "delete it and rerun that rule")
    return obj


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m elth.data", description="Check a dataset and write its manifest.")
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--root", default="data", help="where the dataset's files live (default: data)")
    p.add_argument("--download", action="store_true", help="let torchvision download it (needs internet)")
    p.add_argument("-o", "--out", required=True, help="the manifest JSON to write")
    p.add_argument("--splits", help="also decode it into this file, which every job of the DAG loads")
    args = p.parse_args(argv)
    if args.splits:
        info_ = write_splits(args.dataset, args.root, args.download, args.splits)
    else:
        info_ = manifest(args.dataset, args.root, args.download)
    write_json(args.out, info_)
    print(f"{args.dataset}: {info_['train']} training and {info_['test']} test images under {info_['root']}")


if __name__ == "__main__":
    main()


class StreamingData:
    """ImageNet-style data streamed from disk, serving batches through the same interface as DeviceData."""

    def __init__(self, root: str | Path, device: torch.device, workers: int, last_batch: str = "drop",
                 splits: str | Path | None = None) -> None:
        self.root, self.device, self.workers, self.last_batch = Path(root), device, workers, last_batch
        self.info = info("imagenet")
        if last_batch not in LAST_BATCH:
            raise ConfigError(f"last_batch {last_batch!r} is not one of {', '.join(LAST_BATCH)}")
        self._samples = read_splits(splits, "imagenet") if splits is not None else {"train": None, "test": None}
        self._train_size = len(streaming_loader(root, True, 1, 0, 0, 0, samples=self._samples["train"]).dataset)

    def steps_per_epoch(self, batch_size: int) -> int:
        return steps_per_epoch(self._train_size, batch_size, self.last_batch)

    def epoch(self, seed: int, epoch: int, batch_size: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        loader = streaming_loader(self.root, True, batch_size, self.workers, seed, epoch, self.last_batch,
                                  self._samples["train"])
        for b, (x, y) in enumerate(loader):
            if b >= start:
                x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                yield x, y.to(self.device, non_blocking=True)

    def test_batches(self, batch_size: int = 250) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in streaming_loader(self.root, False, batch_size, self.workers, 0, 0, samples=self._samples["test"]):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def open_data(name: str, options: dict, device: torch.device, workers: int = 1) -> DeviceData | StreamingData:
    """The training data for `name`: in device memory when it fits, streamed from disk for ImageNet.
    `options` is the config's `dataset` section less the name: root, download, train_subset, augment,
    normalize, last_batch (ImageNet's own statistics are ImageNet's, so `normalize` changes nothing there), and
    `splits`, the file `prepare_data` decoded the dataset into (absent: read it through torchvision)."""
    root, last_batch, splits = options.get("root", "data"), options.get("last_batch", "drop"), options.get("splits")
    if name == "imagenet":
        return StreamingData(root, device, workers, last_batch, splits)
    return load(name, root, device, options.get("download", False), options.get("train_subset"), options.get("augment"),
                options.get("normalize", "dataset"), last_batch, splits)
