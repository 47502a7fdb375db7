"""The networks the benchmarks measure (keyword arguments of :class:`pcn.nn.phase_collapse.PhaseCollapseConfig`):
the default mnist5k network and the paper's CIFAR-10 and ImageNet ones (presets/*.yaml)."""

NETWORKS = {
    "mnist5k": dict(
        in_channels=1,
        image_size=28,
        num_classes=10,
        arch="lscat",
        n_angles=4,
        factorize_from=1,
        widths=(16, 32, 64, 64),
    ),
    "cifar10_lscat": dict(
        in_channels=3,
        image_size=32,
        num_classes=10,
        arch="lscat",
        n_angles=4,
        factorize_from=0,
        widths=(64, 128, 256, 512, 512, 512, 512, 512),
    ),
    "cifar10_lscat_skip": dict(
        in_channels=3,
        image_size=32,
        num_classes=10,
        arch="lscat_skip",
        n_angles=4,
        factorize_from=0,
        widths=(64, 128, 256, 512, 512, 512, 512, 512),
    ),
    "imagenet_lscat": dict(
        in_channels=3,
        image_size=224,
        num_classes=1000,
        arch="lscat",
        n_angles=8,
        factorize_from=1,
        widths=(32, 64, 64, 128, 256, 512, 512, 512, 512, 512, 256),
    ),
}
