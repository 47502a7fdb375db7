"""The paper's published numbers (test error in %), as the report quotes them.

They come from the ICLR 2022 poster of the paper (the only readable source of its tables; cells
that could not be read are left blank rather than guessed): Table 1 for CIFAR-10 and ImageNet
(top-1 and top-5), and Table 2's CIFAR-10 LScat+skip cells for the modulus and soft-thresholding.
Keys: data set, then ``(arch, non-linearity)`` as in params.yaml's ``models``.
"""

PAPER_ERRORS = {
    "cifar10": {("lscat", "mod"): 11.7, ("lscat_skip", "mod"): 7.7, ("lscat_skip", "cst"): 22.5},
    "imagenet": {("lscat", "mod"): 35.9, ("lscat_skip", "mod"): 30.1},
}
PAPER_TOP5_ERRORS = {"imagenet": {("lscat", "mod"): 15.2, ("lscat_skip", "mod"): 11.0}}
#: The paper's Table 1 columns: the network of each, as (label, arch, non-linearity).
TABLE1_COLUMNS = (
    ("Scat", "scat", "mod"),
    ("LScat", "lscat", "mod"),
    ("LScat+skip", "lscat_skip", "mod"),
    ("ResNet", "resnet18_standard", "relu"),
)
#: The poster's Table 1, test error % per column. Its Scat numbers are probably quoted from earlier
#: papers; its ResNet is ResNet-20 on CIFAR-10 and torchvision's ResNet-18 on ImageNet, quoted, not retrained.
PAPER_TABLE1 = {
    "CIFAR-10": (27.7, 11.7, 7.7, 8.8),
    "ImageNet top-1": (73.0, 35.9, 30.1, 30.2),
    "ImageNet top-5": (54.1, 15.2, 11.0, 10.9),
}
