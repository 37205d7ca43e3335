"""The networks: the paper's CIFAR nets (cifar), ImageNet-style ResNets for CIFAR (imagenet), and the registry that
builds either from a config (registry)."""
