"""The harness's one use of Lightning's private API (training/module.py: counted_as_a_step): a step that bypasses
LightningOptimizer.step (a replayed CUDA graph) is counted in trainer.global_step through the two private hooks
LightningOptimizer.step calls. If a Lightning release changes them, this test says so in one line."""

import pytest
import pytorch_lightning as pl
import torch

from degradation.training.module import counted_as_a_step

STEPS = 3


class RawSteps(pl.LightningModule):
    """Manual optimization whose every step goes to the raw optimizer, as a replayed graph's does."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.counted_in_step: list[int] = []
        self.weight_after_hooks: list[float] = []

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        before = self.trainer.global_step
        with counted_as_a_step(optimizer):
            self.weight_after_hooks.append(self.weight.item())  # the hooks alone must not step
            self.weight.grad = torch.ones(1)
            optimizer.optimizer.step()
        self.counted_in_step.append(self.trainer.global_step - before)

    def configure_optimizers(self):
        return torch.optim.SGD([self.weight], lr=1.0)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(STEPS * 2, 1), batch_size=1)


def lightning_changed(what: str) -> None:
    pytest.fail(
        f"pytorch-lightning {pl.__version__} changed LightningOptimizer._on_before_step/_on_after_step: {what}; "
        "counted_as_a_step in training/module.py must follow (a graphed step is counted through them)",
        pytrace=False,
    )


def test_a_step_that_bypasses_lightnings_optimizer_is_counted_once_and_nothing_else():
    module = RawSteps()
    trainer = pl.Trainer(
        max_steps=STEPS,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    try:
        trainer.fit(module)
    except AttributeError as missing:
        lightning_changed(f"they are gone ({missing})")
    if module.counted_in_step != [1] * STEPS or trainer.global_step != STEPS:
        lightning_changed(f"{STEPS} steps counted as {module.counted_in_step} (global_step {trainer.global_step})")
    if module.weight_after_hooks != [-float(step) for step in range(STEPS)]:
        lightning_changed(f"they step the optimizer themselves (weights {module.weight_after_hooks})")
