"""The networks the benchmarks measure (keyword arguments of :class:`pcn.nn.phase_collapse.PhaseCollapseConfig`):
the default mnist5k network and the paper's CIFAR-10 and ImageNet ones (presets/*.yaml)."""


def lscat(arch: str, images: tuple[int, int, int], n_angles: int, factorize_from: int, widths: tuple) -> dict:
    """The keyword arguments of a network of block layout ``arch`` for ``images`` = (channels, side, classes)."""
    in_channels, image_size, num_classes = images
    return dict(
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        arch=arch,
        n_angles=n_angles,
        factorize_from=factorize_from,
        widths=widths,
    )


#: The blocks of the paper's CIFAR-10 networks.
CIFAR10_BLOCKS = dict(n_angles=4, factorize_from=0, widths=(64, 128, 256, 512, 512, 512, 512, 512))
IMAGENET_WIDTHS = (32, 64, 64, 128, 256, 512, 512, 512, 512, 512, 256)

NETWORKS = {
    "mnist5k": lscat("lscat", (1, 28, 10), n_angles=4, factorize_from=1, widths=(16, 32, 64, 64)),
    "cifar10_lscat": lscat("lscat", (3, 32, 10), **CIFAR10_BLOCKS),
    "cifar10_lscat_skip": lscat("lscat_skip", (3, 32, 10), **CIFAR10_BLOCKS),
    "imagenet_lscat": lscat("lscat", (3, 224, 1000), n_angles=8, factorize_from=1, widths=IMAGENET_WIDTHS),
}
