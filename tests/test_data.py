"""Data: the MNIST family read from its idx files as torchvision reads them, torchvision's real loaders
on the other datasets' files in their on-disk formats, the Debian unpacking, the missing-data message,
and augmentation as batched tensor ops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elth import data
from elth.errors import CheckpointError, ConfigError, DatasetMissing

from conftest import ROOT, write_mnist_like


def test_cifar10_loads_through_torchvision_from_its_pickle_batches(cifar_root: Path) -> None:
    train = data.load_split("cifar10", cifar_root, train=True)
    test = data.load_split("cifar10", cifar_root, train=False)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (30, 3, 32, 32) and set(test.labels.tolist()) <= set(range(10))


def test_svhn_loads_through_torchvision_and_maps_label_10_to_0(svhn_root: Path) -> None:
    train = data.load_split("svhn", svhn_root, train=True)
    assert train.images.shape == (40, 3, 32, 32)
    assert int(train.labels.min()) == 0 and int(train.labels.max()) == 9


def test_svhn_images_keep_their_pixels_in_channel_first_order(svhn_root: Path) -> None:
    import scipy.io

    raw = scipy.io.loadmat(svhn_root / "train_32x32.mat")["X"]  # (H, W, C, N)
    train = data.load_split("svhn", svhn_root, train=True)
    assert torch.equal(train.images[3, 1], torch.from_numpy(raw[:, :, 1, 3]))


def test_fashion_mnist_is_unpacked_from_debian_gz_files(tmp_path: Path) -> None:
    debian = tmp_path / "debian"
    write_mnist_like(debian, gz=True)
    root = tmp_path / "data"
    assert data.unpack_debian_fashion_mnist(root, source=debian)
    assert not data.unpack_debian_fashion_mnist(root, source=debian)  # idempotent
    train = data.load_split("fashion-mnist", root, train=True)
    assert train.images.shape == (256, 1, 28, 28)


@pytest.mark.parametrize("train", [True, False])
def test_the_mnist_family_is_read_from_its_idx_files_as_torchvision_reads_them(fashion_root: Path, train: bool) -> None:
    from torchvision import datasets

    ours = data.load_split("fashion-mnist", fashion_root, train=train)
    theirs = datasets.FashionMNIST(str(fashion_root), train=train, download=False)
    assert torch.equal(ours.images, theirs.data.unsqueeze(1)) and torch.equal(ours.labels, theirs.targets)
    assert ours.images.dtype == torch.uint8 and ours.labels.dtype == torch.int64


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debians_fashion_mnist_reads_as_torchvision_reads_it(tmp_path: Path) -> None:
    from torchvision import datasets

    ours = data.load_split("fashion-mnist", tmp_path, train=False)
    theirs = datasets.FashionMNIST(str(tmp_path), train=False, download=False)
    assert ours.images.shape == (10_000, 1, 28, 28) and torch.equal(ours.images[:, 0], theirs.data)
    assert torch.equal(ours.labels, theirs.targets)


def test_decoding_the_mnist_family_imports_no_torchvision(fashion_root: Path, tmp_path: Path) -> None:
    code = (f"import sys; from elth import data; data.write_splits('fashion-mnist', {str(fashion_root)!r}, False, "
            f"{str(tmp_path / 'splits.pt')!r}); print(sorted(m for m in sys.modules if m.startswith('torchvision')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]" and (tmp_path / "splits.pt").is_file()


def test_a_truncated_or_foreign_idx_file_is_named_with_the_fix(fashion_root: Path) -> None:
    images = fashion_root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(DatasetMissing, match=r"train-images-idx3-ubyte: its header promises 3 dimensions \[256, 28, 28\]"):
        data.load_split("fashion-mnist", fashion_root, train=True)
    images.write_bytes(b"PK\x03\x04 a zip, not idx")
    with pytest.raises(DatasetMissing, match="not an idx file of unsigned bytes.*decompressed file"):
        data.load_split("fashion-mnist", fashion_root, train=True)
    write_mnist_like(fashion_root / "MNIST" / "raw")  # MNIST, which has no Debian copy to unpack again
    (fashion_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetMissing, match=r"(?s)t10k-labels-idx1-ubyte not in .*MNIST/raw.*Provide it"):
        data.load_split("mnist", fashion_root, train=False)


def test_manifest_describes_the_dataset(cifar_root: Path) -> None:
    m = data.manifest("cifar10", cifar_root)
    assert m["train"] == 100 and m["test"] == 30 and m["in_channels"] == 3 and m["classes_seen"] == 10


@pytest.mark.parametrize("name,where", [("cifar10", "cifar-10-batches-py"), ("svhn", "train_32x32.mat"),
                                        ("mnist", "MNIST/raw"), ("imagenet", "imagenet/train")])
def test_a_missing_dataset_names_the_path_and_the_ways_to_provide_it(tmp_path: Path, name: str, where: str) -> None:
    with pytest.raises(DatasetMissing) as err:
        data.manifest(name, tmp_path / "nowhere")
    message = str(err.value)
    assert where in message and str((tmp_path / "nowhere").resolve()) in message
    assert "Provide it" in message and "dataset.root" in message


def test_the_cli_prints_the_missing_data_message_without_a_traceback(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "elth.data", "cifar10", "--root", str(tmp_path), "-o", str(tmp_path / "m.json")],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert "dataset 'cifar10' not found" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "m.json").exists()


def test_the_cli_writes_a_manifest(fashion_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    subprocess.run([sys.executable, "-m", "elth.data", "fashion-mnist", "--root", str(fashion_root), "-o", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    assert json.loads(out.read_text())["train"] == 256


def test_random_crop_cuts_each_image_at_its_own_offset() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (5, 3, 8, 8), generator=g, dtype=torch.uint8)
    offsets = torch.randint(0, 9, (5, 2), generator=g)
    out = data.random_crop(images, offsets, pad=4)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for i, (r, c) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, r:r + 8, c:c + 8])


def device_data(augment: tuple[str, ...]) -> data.DeviceData:
    g = torch.Generator().manual_seed(0)
    split = data.Split(torch.randint(0, 255, (50, 1, 28, 28), generator=g, dtype=torch.uint8), torch.arange(50) % 10)
    return data.DeviceData(split, split, data.info("fashion-mnist"), augment, torch.device("cpu"))


def test_an_epoch_is_fixed_by_seed_and_epoch_and_resuming_inside_it_gives_its_remaining_batches() -> None:
    d = device_data(("crop", "flip"))
    full = list(d.epoch(seed=3, epoch=2, batch_size=8))
    again = list(d.epoch(seed=3, epoch=2, batch_size=8))
    tail = list(d.epoch(seed=3, epoch=2, batch_size=8, start=4))
    other = list(d.epoch(seed=3, epoch=3, batch_size=8))
    assert len(full) == 6  # 50 // 8: the partial batch is dropped
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full, again))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[4:], tail)) and len(tail) == 2
    assert not torch.equal(full[0][0], other[0][0])


def test_without_augmentation_an_epoch_is_a_permutation_of_the_normalised_images() -> None:
    d = device_data(())
    x, y = next(d.epoch(seed=0, epoch=0, batch_size=50))
    expected = (d.train.images.float() / 255 - 0.2860) / 0.3530
    order = [int(torch.argmin(((expected - img) ** 2).flatten(1).sum(1))) for img in x]
    assert sorted(order) == list(range(50))
    assert torch.allclose(x, expected[order], atol=1e-5) and torch.equal(y, d.train.labels[order])


def test_unknown_augmentation_is_refused() -> None:
    with pytest.raises(ConfigError, match="rotate"):
        device_data(("rotate",))


def write_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            folder = tmp_path / "imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = torch.randint(0, 255, (40, 48, 3), generator=rng, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_imagenet_streams_from_an_image_folder_through_training(tmp_path: Path) -> None:
    from elth.checkpoint import build_for
    from elth.recipe import Recipe
    from elth.train import train

    write_image_folder(tmp_path)
    assert data.manifest("imagenet", tmp_path)["train"] == 8
    stream = data.open_data("imagenet", {"root": str(tmp_path)}, torch.device("cpu"), workers=0)
    x, y = next(stream.epoch(seed=0, epoch=0, batch_size=4))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and set(y.tolist()) <= {0, 1}
    model = build_for("imagenet-resnet-1-1-1-1", "imagenet", seed=0)
    history = train(model, stream, Recipe(epochs=1, batch_size=4, lr=0.01), seed=0).history
    assert history[0]["step"] == 2 and 0.0 <= history[0]["test_acc"] <= 1.0


def test_a_job_loads_the_decoded_splits_and_gets_the_same_data(cifar_root: Path, tmp_path: Path) -> None:
    """prepare_data decodes once (`--splits`); a job given that file loads the same tensors without
    reading the dataset's files, and refuses another dataset's file."""
    # In process: the fixture points torchvision's md5 checks at its own files in this process only.
    data.main(["cifar10", "--root", str(cifar_root), "--splits", str(tmp_path / "splits.pt"),
               "-o", str(tmp_path / "dataset.json")])
    options = {"root": str(cifar_root), "train_subset": 60, "augment": ["crop"]}
    direct = data.open_data("cifar10", options, torch.device("cpu"))
    (cifar_root / "cifar-10-batches-py" / "data_batch_1").unlink()  # the job must not read the files again
    decoded = data.open_data("cifar10", options | {"splits": str(tmp_path / "splits.pt")}, torch.device("cpu"))
    for a, b in ((direct.train, decoded.train), (direct.test, decoded.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert [torch.equal(x, u) for (x, _), (u, _) in zip(direct.epoch(0, 0, 16), decoded.epoch(0, 0, 16))] == [True] * 3
    with pytest.raises(CheckpointError, match="is not the decoded svhn"):
        data.open_data("svhn", {"splits": str(tmp_path / "splits.pt")}, torch.device("cpu"))


def test_imagenet_streams_from_the_file_list_prepare_data_saved(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """ImageNet's 1.3M files are listed once, by prepare_data; a job streams them from that list."""
    from torchvision import datasets

    write_image_folder(tmp_path)
    data.write_splits("imagenet", tmp_path, False, tmp_path / "splits.pt")
    walked = datasets.ImageFolder(str(tmp_path / "imagenet" / "train")).samples

    def no_walk(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the job walked the image folder again")

    monkeypatch.setattr(datasets.ImageFolder, "make_dataset", staticmethod(no_walk))
    stream = data.open_data("imagenet", {"root": str(tmp_path), "splits": str(tmp_path / "splits.pt")},
                            torch.device("cpu"), workers=0)
    assert stream.steps_per_epoch(4) == 2
    loader = data.streaming_loader(tmp_path, True, 4, 0, 0, 0, samples=stream._samples["train"])
    assert loader.dataset.samples == walked
    x, y = next(stream.epoch(seed=0, epoch=0, batch_size=4))
    assert x.shape == (4, 3, 224, 224) and set(y.tolist()) <= {0, 1}


@pytest.mark.parametrize("augment", [(), ("crop", "flip")])
def test_batches_are_laid_out_channels_last_even_with_one_channel(augment: tuple[str, ...]) -> None:
    """The engine's models are channels_last; a one-channel NCHW batch only looks like one (stride 784 for
    its channel, not 1), and a model compared step by step with the engine then picks other kernels."""
    d = device_data(augment)
    x, _ = next(d.epoch(seed=0, epoch=0, batch_size=8))
    test_x, _ = d.test_batches()[0]
    for batch in (x, test_x):
        assert batch.dtype == torch.float32 and batch.stride()[1] == 1 and batch.stride()[3] == 1
