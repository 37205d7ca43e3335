"""Lesion study (Veit et al. 2016): delete blocks of a trained network at test time and measure the test error.

Deleting a block replaces it by its lesioned form, which the block itself gives (nets/contract.py): what it
computes with its residual branch set to zero. For the paper's post-activation blocks that is relu(shortcut(x))
(with option A the shortcut of a downsampling block subsamples and pads with zeros; with a ReLU before every
block, relu(x) = x elsewhere). A plain block has no shortcut: deleting it means passing its input on, which is
possible only where its input and output shapes match; its downsampling blocks cannot be deleted and are
marked. BN stays in eval mode with the trained statistics.
"""

import copy
import random

from torch import nn

from degradation.analysis.job import Job
from degradation.analysis.subjects import Images, Subject, cifar_images, error_and_loss, trained_net

DRAWS = 5  # random sets of deleted blocks per k
KS = (1, 2, 4, 6, 8, 12, 16, 20)  # numbers of random blocks deleted
DEFINITION = (
    "test error (%) of the trained net, eval mode, with blocks deleted: a residual block's output = "
    "relu(shortcut(x)), a plain block's = its input (only where shapes match; downsampling blocks marked)"
)


def deletable(block: nn.Module) -> bool:
    """A residual block always; a plain block only where its output has its input's shape (nets/contract.py)."""
    return block.lesioned() is not None


def without_blocks(net: nn.Module, deleted: set[int]) -> nn.Module:
    """A copy of the network with these blocks (indices into net.blocks) replaced by their lesioned forms."""
    lesioned = copy.deepcopy(net)
    for index in deleted:
        lesioned.blocks[index] = lesioned.blocks[index].lesioned()
    return lesioned


def lesion_study(
    net: nn.Module, images: Images, ks: list[int], draws: int = DRAWS, seed: int = 0, progress=lambda done, total: None
) -> dict:
    """Test error intact, with each block deleted (None where it cannot be), and with k random deletable blocks
    deleted (`draws` draws per k, the same draws for a given seed and net)."""
    blocks = list(net.blocks)
    candidates = [i for i, block in enumerate(blocks) if deletable(block)]
    ks = [k for k in ks if k <= len(candidates)]
    total, done = 1 + len(candidates) + draws * len(ks), 0

    def error(deleted: set[int]) -> float:
        nonlocal done
        done += 1
        progress(done, total)
        return error_and_loss(without_blocks(net, deleted) if deleted else net, images)[0]

    intact = error(set())
    single = [error({i}) if i in candidates else None for i in range(len(blocks))]
    chooser = random.Random(seed)
    by_k = {str(k): [error(set(chooser.sample(candidates, k))) for _ in range(draws)] for k in ks}
    return {
        "intact": intact,
        "single": single,
        "downsampling": [block.changes_shape for block in blocks],
        "random": by_k,
        "draws": draws,
        "images": len(images),
    }


def measure(subject: Subject, job: Job) -> dict:
    """The study on the run's trained weights, by default on the run's own test images."""
    net, step = trained_net(subject)
    size = job.settings["images"] or subject.config.get("data", {}).get("test_size")
    images = cifar_images(subject, job.options.data_root, "test", size, job.device)
    settings = job.settings
    study = lesion_study(
        net.to(job.device), images, settings["ks"], settings["draws"], settings["seed"], job.progress.within
    )
    return {**study, "step": step}
