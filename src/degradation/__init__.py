"""A harness for the degradation problem of He et al. 2015 (section 4.2, CIFAR-10)."""
