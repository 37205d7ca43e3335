"""Writes tiny CIFAR-10 folders in the official pickle format, for tests that must not need the real data."""

import pickle
from pathlib import Path

import numpy as np

from degradation.data.cifar10 import CIFAR_DIRNAME, TEST_BATCH, TRAIN_BATCHES


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    entry = {
        "batch_label": path.name,
        "labels": [int(label) for label in labels],
        "data": images.reshape(len(images), -1),
        "filenames": [f"img_{i}.png" for i in range(len(images))],
    }
    with open(path, "wb") as file:
        pickle.dump(entry, file)


def write_fake_cifar(root: Path, per_batch: int = 32, test_size: int = 40, seed: int = 0) -> Path:
    """root/cifar-10-batches-py with 5 x per_batch training and test_size test images.

    Images of class c are brighter in channel c % 3, so a net can learn something in a few steps.
    """
    rng = np.random.default_rng(seed)
    folder = root / CIFAR_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)

    def make(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 128, (count, 3, 32, 32), dtype=np.uint8)
        images[np.arange(count), labels % 3] += 100
        return images, labels

    for name in TRAIN_BATCHES:
        write_batch(folder / name, *make(per_batch))
    write_batch(folder / TEST_BATCH, *make(test_size))
    return root
