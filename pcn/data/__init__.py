"""Data sets (mnist5k, CIFAR-10, ImageNet, synthetic): preparing with a card and checksums, the
augmentations, and the batches that feed training (on the device, or ImageNet loaders)."""
