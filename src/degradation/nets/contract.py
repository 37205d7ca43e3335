"""The network contract: what every network gives the rest of the harness (training, Figure 7's responses, the
lesion study, shattering, the landscape, the gradient norms). A network is stem -> blocks -> head:

    net(x) == net.head(net.blocks(net.stem(x)))
    net.blocks              an nn.Sequential of blocks (deep nets are run block by block to save memory)
    net.response_layers()   the modules whose outputs are Figure 7's responses, in the order the input meets them

and every block in net.blocks says:

    block.residual          whether it adds a shortcut to its branch
    block.changes_shape     whether its output has another shape than its input (a stage's first block)
    block.branch_end        the last layer of its branch: with its parameters zero the branch adds nothing
    block.lesioned()        what the block computes with its branch deleted (Veit et al.'s lesion): a residual
                            block's shortcut and whatever follows the addition; a plain block that keeps the shape
                            passes its input on; None for a plain block that changes the shape (it cannot be deleted)
    block.response_layers() its part of the network's response layers

Adding a family means meeting this contract; tests/nets/test_contract.py checks it for every registered family
and switch (a residual block whose branch is zeroed equals its lesioned form, the response layers come in network
order, the parameter count is the builder's).
"""

import torch
from torch import nn

BLOCK_ATTRIBUTES = ("residual", "changes_shape", "branch_end", "lesioned", "response_layers")
NET_ATTRIBUTES = ("stem", "blocks", "head", "response_layers")


def missing(net: nn.Module) -> list[str]:
    """What a network lacks of the contract (empty when it meets it), named for an error message."""
    lacks = [f"net.{name}" for name in NET_ATTRIBUTES if not hasattr(net, name)]
    if not isinstance(getattr(net, "blocks", None), nn.Sequential):
        return lacks or ["net.blocks as an nn.Sequential"]
    for index, block in enumerate(net.blocks):
        lacks += [f"net.blocks[{index}].{name}" for name in BLOCK_ATTRIBUTES if not hasattr(block, name)]
    return lacks


def zero_branch(block: nn.Module) -> None:
    """Sets the last layer of the block's branch to zero (weights and biases): the branch then adds nothing."""
    with torch.no_grad():
        for parameter in block.branch_end.parameters():
            parameter.zero_()


def plain_block_deleted(block: nn.Module) -> nn.Module | None:
    """A plain block deleted: its input passes on where the shape allows (after the ReLU that ends the block
    before, a post-activation block's ReLU changes nothing); None where the shape changes."""
    return None if block.changes_shape else nn.Identity()


class ShortcutOnly(nn.Module):
    """A residual block with its branch deleted: what comes before its split into branch and shortcut (a first
    pre-activation block's BN and ReLU), its shortcut, then what follows its addition (the ReLU of a
    post-activation block)."""

    def __init__(self, shortcut: nn.Module, after: nn.Module, before: nn.Module | None = None):
        super().__init__()
        self.before, self.shortcut, self.after = before or nn.Identity(), shortcut, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after(self.shortcut(self.before(x)))
