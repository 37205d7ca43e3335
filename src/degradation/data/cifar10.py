"""CIFAR-10 as the paper uses it, held on the training device and augmented there.

Reads the official python layout (`cifar-10-batches-py/`), subtracts the per-pixel mean image
of the training split, and for training pads 4 zero pixels, takes a random 32x32 crop and flips
horizontally with probability 0.5 — per sample, in batched tensor ops, with no DataLoader
workers and no per-image Python.
"""

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import download_and_extract_archive

from degradation.errors import UserError

CIFAR_DIRNAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
EPOCH_CHUNK = 5000  # images augmented at once when an epoch is made (the padded chunk: 96 MB of float32)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index])


# --- reading the official layout --------------------------------------------------------------


def ensure_cifar10(root: str | Path, download: bool) -> Path:
    """The `cifar-10-batches-py` folder under root; downloads it (checksum-verified) if allowed."""
    folder = Path(root) / CIFAR_DIRNAME
    if has_all_batches(folder):
        return folder
    reason = "data.download=false"
    if download:
        reason = try_download(Path(root))
    if not has_all_batches(folder):
        raise UserError(
            f"CIFAR-10 not found in {folder}/ ({reason}): put the official python batches "
            f"(data_batch_1..5, test_batch) there, or point data.root at a folder that holds {CIFAR_DIRNAME}/"
        )
    return folder


def has_all_batches(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH))


def try_download(root: Path) -> str:
    """Fetches and md5-checks the official archive with torchvision's helper; returns why it failed."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    except Exception as error:  # no network, bad checksum, unwritable folder: all end the same way
        return f"download failed: {type(error).__name__}: {error}".splitlines()[0]
    return "download did not produce it"


def read_batch(path: Path) -> Split:
    """One official batch file, checked for the shapes and labels CIFAR-10 must have."""
    try:
        with open(path, "rb") as file:
            entry = pickle.load(file, encoding="latin1")
        data, labels = np.asarray(entry["data"]), np.asarray(entry["labels"])
    except Exception as error:  # truncated or corrupted pickles fail in many different ways
        raise UserError(f"{path} is not a readable CIFAR-10 batch (truncated or corrupted?): {error}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != math.prod(IMAGE_SHAPE):
        raise UserError(f"{path}: expected uint8 data of shape [N, 3072], got {data.dtype} {list(data.shape)}")
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 or labels.max(initial=0) >= NUM_CLASSES:
        raise UserError(f"{path}: expected {len(data)} labels in 0..{NUM_CLASSES - 1}")
    images = torch.from_numpy(data.reshape(-1, *IMAGE_SHAPE).copy())
    return Split(images, torch.from_numpy(labels.astype(np.int64)))


def concat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]))


def load_cifar10(root: str | Path, download: bool) -> tuple[Split, Split]:
    """(train, test) as uint8 CPU tensors."""
    folder = ensure_cifar10(root, download)
    train = concat([read_batch(folder / name) for name in TRAIN_BATCHES])
    return train, read_batch(folder / TEST_BATCH)


def hold_out(train: Split, val_size: int, split_seed: int) -> tuple[Split, Split | None]:
    """(train, val): val_size random training images set aside, chosen by split_seed alone."""
    if val_size == 0:
        return train, None
    if not 0 < val_size < len(train):
        raise UserError(f"data.val_size must be in [0, {len(train)}), got {val_size}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(split_seed))
    val_index, train_index = order[:val_size].sort().values, order[val_size:].sort().values
    return train.subset(train_index), train.subset(val_index)


def mean_image(split: Split) -> torch.Tensor:
    """Per-pixel mean in [0, 1] units, float32 [3, 32, 32]; summed exactly in integers."""
    total = split.images.sum(0, dtype=torch.int64).double()
    return (total / (255.0 * len(split))).float()


# --- batching and augmentation on the device --------------------------------------------------


def normalize(images: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0).sub_(mean)


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Per-sample crop of the zero-padded images at offsets [B, 2] (row, col), then flip where flips [B].

    One gather: the flip is folded into the column index, so no intermediate copies.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    cols = torch.arange(width, device=images.device)
    cols = torch.where(flips[:, None], width - 1 - cols, cols) + offsets[:, 1, None]
    rows = torch.arange(height, device=images.device) + offsets[:, 0, None]
    sample = torch.arange(batch, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[sample, channel, rows[:, None, :, None], cols[:, None, None, :]]


def num_batches(num_samples: int, batch_size: int, drop_last: bool) -> int:
    if drop_last:
        return num_samples // batch_size
    return math.ceil(num_samples / batch_size)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends on (seed, epoch) only, so any epoch can be replayed on resume.

    Always on the CPU: a CUDA generator draws another stream from the same seed, so the same seed would
    give other batches on a GPU, and a run resumed on another device would repeat some images and skip others.
    """
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(state)


class CifarLoader:
    """Batches (images, labels) from a Split held on one device.

    Training: each epoch a new order, and per sample a crop offset and a flip, all drawn at the
    epoch's start from a generator seeded by (seed, epoch), and the epoch's images made then, so a
    batch is a slice. Evaluation: the original images in order.
    The loader is resumable: `state_dict()` says which epoch and batch come next.
    """

    def __init__(
        self,
        split: Split,
        mean: torch.Tensor,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        pad: int = 4,
        flip: bool = True,
        drop_last: bool = False,
    ):
        self.split, self.mean = split, mean.to(split.images.device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.pad, self.flip, self.drop_last = pad, flip, drop_last
        self.epoch, self.next_batch = 0, 0
        self.eval_data: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return num_batches(len(self.split), self.batch_size, self.drop_last)

    def __iter__(self):
        # Lightning stops asking after the last batch, so the next epoch begins here, not after the loop.
        if self.next_batch >= len(self):
            self.epoch, self.next_batch = self.epoch + 1, 0
        images, labels = self.epoch_data(self.epoch)
        while self.next_batch < len(self):
            start = self.next_batch * self.batch_size
            self.next_batch += 1  # counted when handed out: Lightning does not prefetch sized loaders
            yield images[start : start + self.batch_size], labels[start : start + self.batch_size]

    def epoch_data(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole epoch, normalised, augmented and in its order, made at once: between two training
        steps a batch is only a slice, no kernel launches (on a GPU, ~15 launches a batch fewer). Made in
        chunks, so the padded copies stay small; the evaluation view is made once and kept."""
        if not self.train and self.eval_data is not None:
            return self.eval_data
        device = self.split.images.device
        order, offsets, flips = (None if drawn is None else drawn.to(device) for drawn in self.epoch_plan(epoch))
        images = torch.empty(len(self.split), *IMAGE_SHAPE, device=device)
        for start in range(0, len(order), EPOCH_CHUNK):
            index = order[start : start + EPOCH_CHUNK]
            chunk = normalize(self.split.images[index], self.mean)
            if self.train:
                chunk = crop_and_flip(chunk, offsets[index], flips[index], self.pad)
            images[start : start + len(index)] = chunk
        data = images, self.split.labels[order]
        if not self.train:
            self.eval_data = data
        return data

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The sample order, crop offsets and flips of one epoch (offsets/flips indexed by sample), on the CPU
        whatever device holds the data: the same seed gives the same batches on every device."""
        n = len(self.split)
        if not self.train:
            return torch.arange(n), None, None
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator)
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < (0.5 if self.flip else 0.0)
        return order, offsets, flips

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "next_batch": self.next_batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.next_batch = state["epoch"], state["next_batch"]


def first_images(split: Split, size: int | None) -> Split:
    """The first `size` images (a fixed subset, the same for every run and evaluation); None keeps them all."""
    return split if size is None or size >= len(split) else split.subset(torch.arange(size))


# --- the Lightning data module ----------------------------------------------------------------


class CifarDataModule(pl.LightningDataModule):
    """Loads CIFAR-10 once on the CPU, then serves device-resident loaders to the trainer."""

    def __init__(
        self,
        root: str,
        download: bool = True,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 0,
        split_seed: int = 0,
        pad: int = 4,
        flip: bool = True,
        drop_last: bool = False,
        test_size: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.root, self.download = root, download
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed, self.seed = val_size, split_seed, seed
        self.pad, self.flip, self.drop_last = pad, flip, drop_last
        self.test_size = test_size
        self.train_split: Split | None = None
        self.train_loader: CifarLoader | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_split is not None:
            return
        train, test = load_cifar10(self.root, self.download)
        self.test_split = first_images(test, self.test_size)
        self.train_split, self.val_split = hold_out(train, self.val_size, self.split_seed)
        self.mean = mean_image(self.train_split)

    def use_splits(self, train: Split, test: Split) -> None:
        """Serve these splits instead of reading CIFAR-10 from disk (the benchmark's synthetic data)."""
        self.train_split, self.test_split, self.val_split = train, test, None
        self.mean = mean_image(train)

    @property
    def steps_per_epoch(self) -> int:
        self.setup()
        return num_batches(len(self.train_split), self.batch_size, self.drop_last)

    @property
    def eval_names(self) -> list[str]:
        """Names of the evaluation loaders, in the order of `val_dataloader()`."""
        return ["test"] if self.val_split is None else ["test", "val"]

    def device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def train_dataloader(self) -> CifarLoader:
        if self.train_loader is None:
            self.train_loader = CifarLoader(
                self.train_split.to(self.device()),
                self.mean,
                self.batch_size,
                train=True,
                seed=self.seed,
                pad=self.pad,
                flip=self.flip,
                drop_last=self.drop_last,
            )
        return self.train_loader

    def val_dataloader(self) -> list[CifarLoader]:
        """The test set, and the held-out validation split if there is one (see eval_names)."""
        splits = [self.test_split] if self.val_split is None else [self.test_split, self.val_split]
        return [self.eval_loader(split) for split in splits]

    def test_loader(self) -> CifarLoader:
        return self.eval_loader(self.test_split)

    def eval_loader(self, split: Split) -> CifarLoader:
        return CifarLoader(split.to(self.device()), self.mean, self.eval_batch_size, train=False)
