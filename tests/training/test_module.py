import pytest
import torch

from conftest import compose_config
from degradation.training.build import build_module
from degradation.training.config import warmup_steps
from degradation.training.module import ClassifierModule, LrSchedule
from degradation.training.step import Tally, TrainStep
from degradation.training.whole_step import WholeStep

STEPS = (0, 399, 400, 31_999, 32_000, 48_000)


def test_paper_schedule_without_warmup():
    schedule = LrSchedule()
    assert [schedule.lr_at(s) for s in STEPS] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.001])


def test_paper_schedule_with_warmup():
    schedule = LrSchedule(warmup_steps=400, warmup_lr=0.01)
    assert [schedule.lr_at(s) for s in STEPS] == pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.001])


def test_a_linear_warmup_rises_from_warmup_lr_to_the_base_lr_then_follows_the_milestones():
    schedule = LrSchedule(milestones=(500, 750), warmup_steps=100, warmup_lr=0.01, warmup_shape="linear")
    assert [schedule.lr_at(s) for s in (0, 50, 99, 100, 499, 500, 750)] == pytest.approx(
        [0.01, 0.055, 0.0991, 0.1, 0.1, 0.01, 0.001]
    )


def test_the_warmup_shape_reaches_the_module_from_the_config():
    module = build_module(
        compose_config("optim.warmup=true", "optim.warmup_shape=linear", "optim.warmup_steps=10"), eval_names=["test"]
    )
    assert module.schedule.lr_at(5) == pytest.approx(0.055)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model.depth=110"], 400),
        (["model.depth=56"], 0),
        (["model.depth=20", "optim.warmup=true"], 400),
        (["model.depth=110", "optim.warmup=false"], 0),
    ],
)
def test_warmup_is_on_by_default_for_depth_110_and_switchable(overrides, expected):
    assert warmup_steps(compose_config(*overrides)) == expected


# The paper's rates for ResNet-110 at STEPS: warm-up at 0.01 for 400 iterations, 0.1, then /10 at 32k and 48k.
PAPER_RESNET110_LR = (0.01, 0.01, 0.1, 0.1, 0.01, 0.001)


def test_the_optimizer_follows_the_paper_schedule_step_by_step(monkeypatch):
    """From the composed config through the module's training_step (not from LrSchedule itself): a lost
    warm-up or milestone must show here. The rate each update used is read inside optimizer.step()."""
    module = build_module(compose_config("model.depth=110"), ["test"])
    optimizer = module.configure_optimizers()
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 1e-4
    used, original_step = [], optimizer.step
    monkeypatch.setattr(optimizer, "step", lambda: used.append(optimizer.param_groups[0]["lr"]) or original_step())
    module.train_step = TrainStep(module.net, optimizer, module.speed, module.train_tally)
    monkeypatch.setattr(module, "end_of_step", lambda step: None)  # rows need a Trainer; the rates do not
    batch = (torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    for step in STEPS:
        monkeypatch.setattr(ClassifierModule, "global_step", property(lambda self, step=step: step))
        module.training_step(batch, 0)
    assert used == pytest.approx(PAPER_RESNET110_LR, rel=1e-12)


def test_tally_reads_mean_loss_and_percent_error_then_resets():
    tally = Tally()
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
    tally.add(torch.tensor(1.0), logits[:2], torch.tensor([0, 0]))  # one of two wrong
    tally.add(torch.tensor(3.0), logits[2:], torch.tensor([0, 0]))  # both right
    sums = tally.sums
    assert tally.read() == pytest.approx((2.0, 25.0))
    assert tally.count == 0 and tally.sums.tolist() == [0.0, 0.0]
    tally.add(torch.tensor(1.0), logits[:1], torch.tensor([1]))
    assert tally.sums is sums  # summed in place: a captured CUDA graph keeps adding into this memory
    assert tally.read() == pytest.approx((1.0, 100.0))


def test_module_checkpoint_carries_the_open_training_window():
    module = ClassifierModule(
        net=dict(depth=8, residual=True),
        optim=dict(
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            nesterov=False,
            milestones=[10],
            gamma=0.1,
            warmup_steps=0,
            warmup_lr=0.01,
        ),
    )
    module.train_tally.add(torch.tensor(0.5), torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    module.train_tally = Tally()
    module.on_load_checkpoint(checkpoint)
    assert module.train_tally.read() == pytest.approx((0.5, 100.0))


HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")  # each waits for the device


@pytest.mark.parametrize(
    "speed",
    [[], ["speed.cuda_graphs=true"], ["trainer.progress_bar=true"]],
    ids=["eager", "whole-step", "progress-bar"],
)
def test_a_training_step_never_reads_a_tensor_back_to_the_host(tmp_path, fake_cifar_root, monkeypatch, speed):
    """Loss and error stay on the device between metrics rows: on a GPU a read would stall every step.
    Steps that write a row (log_every, eval_every) may read; no other step does, with the progress bar
    (a terminal) or without. Counted by wrapping the tensor methods that read values, from the start of
    each step to the start of the next (so every callback's work after the step counts too)."""
    import pytorch_lightning as pl

    from conftest import TINY_RUN, add_callback
    from degradation.runs.rundir import RunDir
    from degradation.training import lifecycle

    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)

    class ReadsPerStep(pl.Callback):
        def __init__(self):
            self.per_step, self.step, self.before = {}, None, 0

        def close_window(self):
            if self.step is not None:
                self.per_step[self.step] = reads[self.before :]
            self.before = len(reads)

        def on_train_batch_start(self, trainer, *args):
            self.close_window()
            self.step = trainer.global_step + 1  # the step about to run, counted as global_step counts it

        def on_train_end(self, trainer, *args):
            self.close_window()

    counter = ReadsPerStep()
    add_callback(monkeypatch, counter)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    lifecycle.train(compose_config(*TINY_RUN, f"data.root={fake_cifar_root}", *speed), run)
    assert sorted(counter.per_step) == list(range(1, 13))
    row_steps = {row["step"] for row in run.read_metrics()}  # 4, 6, 8, 12: reading there is the point
    assert {step: names for step, names in counter.per_step.items() if names and step not in row_steps} == {}


@pytest.mark.parametrize("whole", [False, True], ids=["eager-step", "whole-step"])
def test_fixups_scalars_train_at_a_tenth_of_the_lr_as_in_zhang_et_als_code(whole):
    """From the composed config: in a Fixup net every bias and multiplier (Fixup's scalars, the classifier's
    bias) is updated at optim.fixup_scalar_lr times the lr, every weight at the lr; a BN net all at the lr."""
    fixup_scalars = {"blocks.0.fixup.scale", "blocks.0.fixup.bias1a", "stem_bias", "head_bias", "fc.bias"}
    for overrides, tenth in ((["model.branch_init=fixup", "model.norm=none"], fixup_scalars), ([], set())):
        module = build_module(compose_config("model.depth=8", *overrides), ["test"])
        optimizer = module.configure_optimizers()
        if whole:
            step = WholeStep(module.net, optimizer, module.speed, module.train_tally, batch_size=2)
        else:
            step = TrainStep(module.net, optimizer, module.speed, module.train_tally)
        step.set_lr(0.2)
        rate = {id(p): float(group["lr"]) for group in optimizer.param_groups for p in group["params"]}
        used = {name: rate[id(p)] for name, p in module.net.named_parameters()}
        assert {name for name, lr in used.items() if lr == pytest.approx(0.02)} >= tenth
        slow = {name for name in used if tenth and ("bias" in name or "scale" in name)}
        assert used == pytest.approx({name: 0.02 if name in slow else 0.2 for name in used})
