import numpy as np
import pytest
import torch

from degradation.data.cifar10 import (
    CIFAR_DIRNAME,
    CifarDataModule,
    CifarLoader,
    Split,
    ensure_cifar10,
    hold_out,
    load_cifar10,
    mean_image,
    read_batch,
)
from degradation.errors import UserError
from fake_cifar import write_batch, write_fake_cifar

CENTER = 16


def marker_images(count: int) -> Split:
    """Black images with two marks: 200 at the centre and 250 just right of it (shows flips)."""
    images = torch.zeros(count, 3, 32, 32, dtype=torch.uint8)
    images[:, :, CENTER, CENTER] = 200
    images[:, :, CENTER, CENTER + 1] = 250
    return Split(images, torch.zeros(count, dtype=torch.int64))


def crop_offset_and_flip(image: torch.Tensor) -> tuple[int, int, bool]:
    """Recovers (row offset, col offset, flipped) of one augmented marker image (pad 4)."""
    channel = image[0]
    row, col = divmod(int(torch.argmax((channel - 200 / 255).abs().lt(1e-6).float())), 32)
    flipped = channel[row, col - 1].item() == pytest.approx(250 / 255)
    # unflipped: centre lands at (20 - dy, 20 - dx); flipped: column 31 - (20 - dx) = 11 + dx
    return 20 - row, (col - 11) if flipped else (20 - col), flipped


def test_crops_cover_all_81_offsets_uniformly_and_flip_half_the_images():
    count = 81 * 100
    loader = CifarLoader(marker_images(count), torch.zeros(3, 32, 32), batch_size=1000, train=True, seed=3)
    counts, flips = np.zeros((9, 9)), 0
    for images, _ in loader:
        for image in images:
            dy, dx, flipped = crop_offset_and_flip(image)
            counts[dy, dx] += 1
            flips += flipped
    assert counts.sum() == count and counts.min() > 0  # every one of the 81 positions occurs
    chi_square = ((counts - 100) ** 2 / 100).sum()
    assert chi_square < 130  # 80 degrees of freedom: p < 0.001 beyond this
    assert flips / count == pytest.approx(0.5, abs=0.03)


def test_padding_is_zero_after_mean_subtraction():
    """The paper pads the mean-subtracted image with zeros; padding before subtracting would give -mean."""
    split = Split(torch.full((64, 3, 32, 32), 255, dtype=torch.uint8), torch.zeros(64, dtype=torch.int64))
    loader = CifarLoader(split, torch.full((3, 32, 32), 0.25), batch_size=64, train=True, seed=0)
    images, _ = next(iter(loader))
    values = set(images.unique().tolist())
    assert values <= {0.0, 0.75} and 0.0 in values  # only image pixels (1 - 0.25) and zero padding


def test_test_view_is_the_mean_subtracted_original_in_order(fake_cifar_root):
    train, test = load_cifar10(fake_cifar_root, download=False)
    mean = mean_image(train)
    loader = CifarLoader(test, mean, batch_size=16, train=False)
    images = torch.cat([batch for batch, _ in loader])
    labels = torch.cat([batch_labels for _, batch_labels in loader])
    assert torch.allclose(images, test.images.float() / 255 - mean)
    assert torch.equal(labels, test.labels)


@pytest.mark.parametrize("test_size, evaluated", [(None, "all"), (7, 7), (10**6, "all")])
def test_evaluation_runs_on_the_first_test_size_test_images(fake_cifar_root, test_size, evaluated):
    _, test = load_cifar10(fake_cifar_root, download=False)
    data = CifarDataModule(root=str(fake_cifar_root), download=False, test_size=test_size)
    data.setup()
    [loader] = data.val_dataloader()
    labels = torch.cat([batch_labels for _, batch_labels in loader])
    expected = test.labels if evaluated == "all" else test.labels[:evaluated]
    assert torch.equal(labels, expected) and torch.equal(data.test_loader().split.labels, expected)


def test_mean_image_is_the_per_pixel_mean_of_the_training_split(fake_cifar_root):
    train, _ = load_cifar10(fake_cifar_root, download=False)
    expected = train.images.numpy().astype(np.float64).mean(axis=0) / 255
    assert mean_image(train).shape == (3, 32, 32)
    assert np.allclose(mean_image(train).numpy(), expected, atol=1e-6)


def test_batches_depend_on_the_seed_only():
    split = Split(torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8), torch.arange(100) % 10)
    batches = lambda seed: [b for b, _ in CifarLoader(split, torch.zeros(3, 32, 32), 32, train=True, seed=seed)]  # noqa: E731
    first, again, other = batches(1), batches(1), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_each_epoch_has_a_new_order_and_a_partial_last_batch():
    split = Split(torch.zeros(100, 3, 32, 32, dtype=torch.uint8), torch.arange(100))
    loader = CifarLoader(split, torch.zeros(3, 32, 32), 32, train=True, seed=0)
    epochs = [torch.cat([labels for _, labels in loader]) for _ in range(2)]
    assert len(loader) == 4 and [len(labels) for _, labels in loader][-1] == 4
    assert sorted(epochs[0].tolist()) == list(range(100))
    assert not torch.equal(epochs[0], epochs[1])


def test_a_restored_loader_continues_exactly_where_the_saved_one_was():
    split = Split(torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8), torch.arange(100))
    original = CifarLoader(split, torch.zeros(3, 32, 32), 16, train=True, seed=5)
    list(original)  # epoch 0
    stream = iter(original)
    for _ in range(3):
        next(stream)
    restored = CifarLoader(split, torch.zeros(3, 32, 32), 16, train=True, seed=5)
    restored.load_state_dict(original.state_dict())
    for (a, la), (b, lb) in zip(stream, restored):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_held_out_split_is_fixed_by_its_seed_and_disjoint():
    train = Split(torch.zeros(50, 3, 32, 32, dtype=torch.uint8), torch.arange(50))
    kept, val = hold_out(train, 10, split_seed=0)
    again, _ = hold_out(train, 10, split_seed=0)
    assert len(kept) == 40 and len(val) == 10
    assert set(kept.labels.tolist()).isdisjoint(val.labels.tolist())
    assert torch.equal(kept.labels, again.labels)


def test_missing_data_with_download_off_names_the_folder(tmp_path):
    with pytest.raises(UserError, match=f"{CIFAR_DIRNAME}.*data.download=false"):
        ensure_cifar10(tmp_path, download=False)


def test_truncated_and_malformed_batches_are_refused(tmp_path):
    folder = write_fake_cifar(tmp_path) / CIFAR_DIRNAME
    truncated = folder / "data_batch_1"
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(UserError, match="truncated or corrupted"):
        read_batch(truncated)
    wrong_shape = folder / "data_batch_2"
    write_batch(wrong_shape, np.zeros((4, 3, 16, 16), dtype=np.uint8), np.zeros(4))
    with pytest.raises(UserError, match=r"shape \[N, 3072\]"):
        read_batch(wrong_shape)
    bad_labels = folder / "data_batch_3"
    write_batch(bad_labels, np.zeros((4, 3, 32, 32), dtype=np.uint8), np.array([0, 1, 2, 10]))
    with pytest.raises(UserError, match="labels in 0..9"):
        read_batch(bad_labels)


def test_an_epoch_made_at_once_in_chunks_gives_each_batch_its_own_samples_augmentation(monkeypatch):
    """Batches are slices of the epoch made in chunks (here 30 images, across the batches of 16): each must
    hold exactly its samples in the epoch's order, each with the crop and flip drawn for that sample."""
    from degradation.data import cifar10 as data

    monkeypatch.setattr(data, "EPOCH_CHUNK", 30)
    split = Split(torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8), torch.arange(100))
    mean = mean_image(split)
    loader = CifarLoader(split, mean, 16, train=True, seed=2)
    order, offsets, flips = loader.epoch_plan(0)
    for number, (images, labels) in enumerate(loader):
        index = order[16 * number : 16 * (number + 1)]
        expected = data.crop_and_flip(data.normalize(split.images[index], mean), offsets[index], flips[index], pad=4)
        assert torch.equal(labels, index) and torch.equal(images, expected)


def test_the_epoch_plan_is_drawn_on_the_cpu_whatever_device_holds_the_data():
    """A CUDA generator draws another stream than a CPU one from the same seed: the order, crops and flips are
    drawn on the CPU and then moved, so the same seed gives the same batches on every device and a run resumed
    on another device (GPU -> CPU, cuda:1 -> cuda:0) continues the same data stream. Here the data live on the
    meta device (a device without values); tests/gpu compares real CPU and CUDA batches."""
    split = Split(torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8), torch.arange(100))
    mean = mean_image(split)
    on_cpu = CifarLoader(split, mean, 16, train=True, seed=3)
    elsewhere = CifarLoader(split.to(torch.device("meta")), mean, 16, train=True, seed=3)
    for epoch in (0, 5):
        for cpu_drawn, drawn in zip(on_cpu.epoch_plan(epoch), elsewhere.epoch_plan(epoch)):
            assert drawn.device.type == "cpu" and torch.equal(drawn, cpu_drawn)
    images, labels = next(iter(elsewhere))
    assert images.device.type == labels.device.type == "meta" and images.shape == (16, 3, 32, 32)
