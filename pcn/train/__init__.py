"""Training: one epoch (train / test), the epoch loop with its schedule and model selection,
checkpoints, the device and torch.distributed helpers."""
