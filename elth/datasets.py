"""What elth knows about each dataset: shapes, normalisation, default augmentation, and where its
files go. Kept out of elth/data.py, which loads the data with torch, so that config validation can
check a study against it (a transfer between datasets of other channels, say) in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from elth.errors import ConfigError, DatasetMissing


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of elth needs to know about a dataset: shapes, statistics, default augmentation."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: tuple[str, ...]
    where: str  # what torchvision looks for under the root, for the missing-data message
    how: str  # how to provide it offline

    @property
    def in_features(self) -> int:
        return self.in_channels * self.image_size * self.image_size

    @property
    def shape(self) -> str:
        """'1 channel, 10 classes, 28x28': what a transfer between datasets must agree on, in words."""
        channels = f"{self.in_channels} channel" + ("s" if self.in_channels > 1 else "")
        return f"{channels}, {self.num_classes} classes, {self.image_size}x{self.image_size}"


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("fashion-mnist", 1, 10, 28, (0.2860,), (0.3530,), ("crop", "flip"), "FashionMNIST/raw",
                    "apt-get install dataset-fashion-mnist (elth unpacks /usr/share/datasets/fashion-mnist), "
                    "or copy the four decompressed idx files into <root>/FashionMNIST/raw/"),
        DatasetInfo("mnist", 1, 10, 28, (0.1307,), (0.3081,), (), "MNIST/raw",
                    "copy the four decompressed idx files (train-images-idx3-ubyte, ...) into <root>/MNIST/raw/"),
        DatasetInfo("cifar10", 3, 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), ("crop", "flip"),
                    "cifar-10-batches-py",
                    "extract cifar-10-python.tar.gz into <root> (it makes <root>/cifar-10-batches-py/)"),
        DatasetInfo("svhn", 3, 10, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), ("crop",),
                    "train_32x32.mat and test_32x32.mat",
                    "copy train_32x32.mat and test_32x32.mat (the cropped-digits format) into <root>/"),
        # scikit-learn's bundled 8x8 handwritten digits upsampled to Fashion-MNIST's shape: a
        # second 1-channel, 10-class, 28x28 dataset that needs no download, for transfer proxies.
        DatasetInfo("digits", 1, 10, 28, (0.3056,), (0.3247,), (), "nothing (scikit-learn bundles it)",
                    "install scikit-learn (pip install scikit-learn); sklearn.datasets.load_digits reads its own copy"),
        DatasetInfo("imagenet", 3, 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), ("crop", "flip"),
                    "imagenet/train and imagenet/val (one folder per class)",
                    "put the ILSVRC-2012 train and val images in <root>/imagenet/{train,val}/<class>/ (ImageFolder layout)"),
    )
}


def info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetMissing(f"unknown dataset {name!r}; elth knows {', '.join(DATASETS)}") from None


# How inputs are normalised: `dataset`, with the dataset's own mean and std (elth's default), or
# `imagenet`, with ImageNet's, which open_lth (datasets/cifar10.py) applies to CIFAR-10 as well.
NORMALIZATIONS = ("dataset", "imagenet")
# The last partial batch of a training epoch: `drop` it (elth's default: every step has one shape)
# or `keep` it, as open_lth's DataLoader does (datasets/base.py: ceil(N / batch) iterations).
LAST_BATCH = ("drop", "keep")


def normalization(d: DatasetInfo, rule: str = "dataset") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) inputs of `d` are normalised with under `rule`, one value per channel."""
    if rule not in NORMALIZATIONS:
        raise ConfigError(f"normalize {rule!r} is not one of {', '.join(NORMALIZATIONS)}")
    if rule == "dataset":
        return d.mean, d.std
    imagenet = DATASETS["imagenet"]
    if d.in_channels != imagenet.in_channels:
        raise ConfigError(f"normalize: imagenet gives 3 channels' statistics, but {d.name} has {d.shape}; "
                          "use normalize: dataset")
    return imagenet.mean, imagenet.std


def steps_per_epoch(examples: int, batch_size: int, last_batch: str = "drop") -> int:
    """Training steps in one epoch of `examples`: the full batches, plus the partial one under `keep`."""
    if last_batch not in LAST_BATCH:
        raise ConfigError(f"last_batch {last_batch!r} is not one of {', '.join(LAST_BATCH)}")
    steps = examples // batch_size if last_batch == "drop" else (examples + batch_size - 1) // batch_size
    if steps == 0:
        raise DatasetMissing(f"{examples} training images are fewer than one batch of {batch_size}")
    return steps
