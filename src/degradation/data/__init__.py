"""CIFAR-10 as the paper uses it: official files read and checked, held and augmented on the device (cifar10)."""
