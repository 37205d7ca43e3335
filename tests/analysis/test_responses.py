from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import TINY_RUN, compose_config, main_refuses
from degradation.analysis.responses import eager_copy, response_layers, response_stds
from degradation.data.cifar10 import CifarLoader, Split
from degradation.nets.cifar import CifarNet
from degradation.runs.rundir import RunDir
from degradation.training.callbacks import RecordResponses


def test_one_response_per_3x3_layer_in_network_order():
    net = CifarNet(20, residual=True, shortcut="B")  # projection BNs are not 3x3 layers
    layers = response_layers(net)
    assert len(layers) == 19 and layers[0] is net.bn and layers[-1] is net.blocks[-1].bn2


def test_response_std_is_the_std_of_the_bn_output_over_the_whole_set_in_eval_mode():
    torch.manual_seed(0)
    net = CifarNet(8, residual=False)
    nn.init.normal_(net.blocks[0].bn2.weight, 2.0, 0.1)
    images = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    loader = CifarLoader(Split(images, torch.zeros(50, dtype=torch.long)), torch.zeros(3, 32, 32), 16, train=False)
    outputs = []
    handle = net.blocks[0].bn2.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    net.eval()
    with torch.no_grad():
        for batch, _ in loader:
            net(batch)
    handle.remove()
    net.train()
    stds = response_stds(net, loader)
    assert len(stds) == 7 and net.training  # mode restored
    # each batch's moments in float32, pooled in double precision: far closer than Figure 7 can show
    assert stds[2] == pytest.approx(torch.cat(outputs).double().std().item(), rel=1e-6)


def test_responses_never_make_a_float64_tensor():
    """Apple's MPS has no float64: measuring in float64 on the network's device failed every run there at its
    end, after all its training. Batches' moments stay float32 on the device; the host pools them."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Float64Made(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_leaves(out)):
                self.ops.append(str(func))
            return out

    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    loader = CifarLoader(Split(images, torch.zeros(40, dtype=torch.long)), torch.zeros(3, 32, 32), 16, train=False)
    net = CifarNet(8, residual=True)
    with Float64Made() as watch:
        stds = response_stds(net, loader)
    assert len(stds) == 7 and all(std > 0 for std in stds)
    assert watch.ops == [], sorted(set(watch.ops))


# --- end-of-run responses work with whatever device and wrapping the network has then -----------

TINY_MODULE = ["model.depth=8", "data.download=false"]


def tiny_module(*overrides):
    from degradation.training.build import build_module

    return build_module(compose_config(*TINY_MODULE, *overrides), ["test"])


def test_responses_are_written_while_the_trainer_still_holds_the_network(tmp_path, fake_cifar_root, monkeypatch):
    """On a GPU, Lightning's teardown moves the module to the CPU while the test batches stay on the GPU.
    Here teardown moves it to the meta device instead: measuring after fit() would fail the same way."""
    from pytorch_lightning.strategies import SingleDeviceStrategy

    from degradation.runs.rundir import RunDir
    from degradation.training import lifecycle

    teardown = SingleDeviceStrategy.teardown

    def teardown_to_another_device(strategy):
        teardown(strategy)
        strategy.lightning_module.to("meta")

    monkeypatch.setattr(SingleDeviceStrategy, "teardown", teardown_to_another_device)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    summary = lifecycle.train(compose_config(*TINY_RUN, f"data.root={fake_cifar_root}"), run)
    assert summary["status"] == "completed"
    stds = run.read_responses()
    assert len(stds) == 7 and all(0 < std < float("inf") for std in stds)


def test_a_compiled_network_never_traces_the_response_hooks(tmp_path):
    from torch._dynamo.utils import counters

    module = tiny_module()
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    loader = CifarLoader(
        Split(images, torch.zeros(40, dtype=torch.long)), torch.full((3, 32, 32), 120.0), 20, train=False
    )
    eager = response_stds(module.net, loader)
    module.net.compile()
    trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        datamodule=SimpleNamespace(test_loader=lambda: loader),
        global_step=12,
    )
    frames_before = counters["frames"]["total"]
    RecordResponses(RunDir(tmp_path)).on_train_end(trainer, module)
    assert counters["frames"]["total"] == frames_before  # nothing was compiled while measuring
    assert RunDir(tmp_path).read_responses() == pytest.approx(eager, rel=1e-6)


def test_batches_follow_the_network_to_its_device_in_float32():
    """Batches from another device than the network's are moved to it; a surrounding autocast is switched off."""
    module = tiny_module()
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    loader = CifarLoader(
        Split(images, torch.zeros(20, dtype=torch.long)), torch.full((3, 32, 32), 120.0), 20, train=False
    )
    expected = response_stds(eager_copy(module), loader)
    meta_batches = [(torch.empty(20, 3, 32, 32, device="meta"), None)]
    net = eager_copy(module)
    with pytest.raises(NotImplementedError):  # proof that the batch was moved: meta tensors cannot be copied to the CPU
        response_stds(net, meta_batches)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert response_stds(eager_copy(module), loader) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "error: the following arguments are required: checkpoint"),
        (["{tmp}/nope.ckpt"], "error: no checkpoint at {tmp}/nope.ckpt"),
        (["{tmp}/last.ckpt", "--batch", "9"], "error: unrecognized arguments: --batch 9"),
    ],
)
def test_the_responses_command_refuses_bad_input_with_one_line(tmp_path, capsys, args, words):
    from degradation.analysis import responses

    line = main_refuses(responses.main, [arg.format(tmp=tmp_path) for arg in args], capsys)
    assert line.startswith(words.format(tmp=tmp_path)), line


def test_the_responses_command_recomputes_what_training_wrote_from_the_last_checkpoint(straight_run, tmp_path, capsys):
    """For runs older than responses.json: the checkpoint's weights and the run's own test images give the same stds."""
    import shutil

    from degradation.analysis import responses

    run = RunDir(shutil.copytree(straight_run.path, tmp_path / "run"))
    written = run.read_responses()
    run.responses_path.unlink()
    responses.main([str(run.last_checkpoint)])
    assert capsys.readouterr().out.strip() == str(run.responses_path)
    assert run.read_responses() == pytest.approx(written, rel=1e-5)  # other batch sizes: other float32 rounding
