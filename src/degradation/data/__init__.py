"""CIFAR-10 as the paper uses it: the official files read and checked, held on the training device, augmented there
(cifar10)."""
