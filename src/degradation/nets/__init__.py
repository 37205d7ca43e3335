"""The networks: the paper's CIFAR nets (cifar), ImageNet-style ResNets (imagenet), built from a config (registry)."""
