"""Bias-free ResNet-18 with a choice of non-linearity (the paper's Table 3).

torchvision's ResNet-18 structure (7x7/2 stem + max-pool, 4 stages of 2 BasicBlocks
with 64/128/256/512 channels, global average pooling, a Linear layer) with every
bias removed: convolutions without bias and ``BatchNorm2d(affine=False)``. Only the
final Linear layer keeps its bias, as in the reference. The non-linearity (one of
:data:`pcn.nn.nonlinearities.RESNET_REGISTRY`, whose module gives the formulas) replaces every ReLU
(after the stem, inside each block and after each residual sum).

``stem="small"`` swaps the ImageNet stem for a 3x3/1 convolution without max-pool, for small
images (the usual CIFAR stem: stage 1 runs at the input's resolution); ``stem="strided"`` for a
3x3/2 convolution without max-pool (stage 1 at half the input's resolution: 20x20 on the 40x40
translated digits, the resolution of LScat's first block output, at a quarter of the small stem's
cost: measured 138 vs 34 training images/s on 2 CPU cores, 299 with the ImageNet stem).
:class:`StandardResNet18` is the Table 1 ResNet column: torchvision's ResNet-18 with its biases
(affine BatchNorm) and ReLU, with the same choice of stem.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pcn.names import STEMS
from pcn.nn.layers import GlobalBatchNorm2d
from pcn.nn.nonlinearities import ResNetNonlinearity, resnet_nonlinearity

#: The stride of the small-image stems' 3x3 convolution.
SMALL_STEM_STRIDE = {"small": 1, "strided": 2}
#: The reference's initial threshold of ``thresh`` (its quoting bug also froze it there).
THRESH_INIT = 1.0


def _bn(channels: int) -> nn.BatchNorm2d:
    return GlobalBatchNorm2d(channels, affine=False)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, kind: str, learned: bool, threshold_init: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.act1 = resnet_nonlinearity(kind, planes, learned, threshold_init)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), _bn(planes))
        self.act2 = resnet_nonlinearity(kind, planes, learned, threshold_init)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + identity)


class BiasFreeResNet18(nn.Module):
    """Bias-free ResNet-18; ``forward_features`` returns the stem and the 4 stage outputs."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        nonlinearity: str = "relu",
        learned: bool = True,
        threshold_init: float = THRESH_INIT,
        stem: str = "imagenet",
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown ResNet stem {stem!r}; valid: {', '.join(STEMS)}")
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
                _bn(64),
                resnet_nonlinearity(nonlinearity, 64, learned, threshold_init),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 3, SMALL_STEM_STRIDE[stem], 1, bias=False),
                _bn(64),
                resnet_nonlinearity(nonlinearity, 64, learned, threshold_init),
            )
        stages, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(
                    BasicBlock(in_planes, planes, stride, nonlinearity, learned, threshold_init),
                    BasicBlock(planes, planes, 1, nonlinearity, learned, threshold_init),
                )
            )
            in_planes = planes
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def nonlinearity_modules(self) -> list[list[nn.Module]]:
        """The non-linearities of each layer (the stem, then the 4 stages)."""
        return [[m for m in part.modules() if isinstance(m, ResNetNonlinearity)] for part in (self.stem, *self.stages)]

    def layer_features(self, x: Tensor) -> list[Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats

    def head(self, features: Tensor) -> Tensor:
        """Logits (B, K) of the last stage's output (B, 512, h, w): global average pooling, then the Linear layer."""
        return self.fc(torch.flatten(torch.mean(features, dim=(2, 3)), 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


class StandardResNet18(nn.Module):
    """torchvision's ResNet-18 (biases in the affine BatchNorms and the Linear layer, ReLU), untrained.

    ``stem="small"`` (``"strided"``) replaces its 7x7/2 convolution and max-pool by a 3x3/1 (3x3/2)
    convolution (the usual CIFAR-style stem); ``in_channels`` other than 3 change the first convolution's input.
    """

    def __init__(self, in_channels: int, num_classes: int, stem: str = "imagenet"):
        super().__init__()
        from torchvision.models import resnet18

        if stem not in STEMS:
            raise ValueError(f"unknown ResNet stem {stem!r}; valid: {', '.join(STEMS)}")
        self.net = resnet18(weights=None, num_classes=num_classes)
        if stem in SMALL_STEM_STRIDE:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 3, SMALL_STEM_STRIDE[stem], 1, bias=False)
            self.net.maxpool = nn.Identity()
        elif in_channels != 3:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(self.net.conv1.weight, mode="fan_out", nonlinearity="relu")

    def nonlinearity_modules(self) -> list[list[nn.Module]]:
        """The ReLU modules of each layer (the stem, then the 4 stages; a block calls its own twice)."""
        n = self.net
        return [
            [n.relu],
            *[
                [m for m in stage.modules() if isinstance(m, nn.ReLU)]
                for stage in (n.layer1, n.layer2, n.layer3, n.layer4)
            ],
        ]

    def layer_features(self, x: Tensor) -> list[Tensor]:
        """The stem's and the 4 stages' outputs (after their ReLU)."""
        n = self.net
        feats = [n.maxpool(n.relu(n.bn1(n.conv1(x))))]
        for stage in (n.layer1, n.layer2, n.layer3, n.layer4):
            feats.append(stage(feats[-1]))
        return feats

    def head(self, features: Tensor) -> Tensor:
        """Logits (B, K) of the last stage's output (B, 512, h, w): torchvision's average pooling, flatten, fc."""
        return self.net.fc(torch.flatten(self.net.avgpool(features), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
