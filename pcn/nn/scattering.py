"""The Scat baseline of the paper's Table 1: a scattering network whose projections are predefined.

The scattering transform is kymatio's (``kymatio.torch.Scattering2D``, order 2, ``L`` angles,
``J`` scales; not rewritten here): for each input channel it gives

.. math::

    S x = \\big(x * \\phi_J,\\; |x * \\psi_{j,\\theta}| * \\phi_J,\\;
          ||x * \\psi_{j,\\theta}| * \\psi_{j',\\theta'}| * \\phi_J\\big)_{j < j'}

that is :math:`K = 1 + J L + L^2 J (J - 1) / 2` real maps of side ``image_size / 2^J``. Its
"projections" are fixed (the Morlet wavelets and the averaging :math:`\\phi_J`): nothing is learned
before the classifier, which is the LScat one on real channels: standardization (affine-free,
:class:`pcn.nn.layers.Standardization`), then BatchNorm2d (affine) and a Linear layer over the
flattened maps, without pooling. This follows the predecessor code of the authors
(SparseScatNet's ``scatnet``: Scattering2D, standardization, identity projection, BatchNorm,
linear); ``J`` is a parameter (``network.scat_J``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pcn.nn.features import SplitFeatures
from pcn.nn.layers import GlobalBatchNorm2d, Standardization


def scattering_channels(J: int, L: int, max_order: int = 2) -> int:
    """Number of scattering maps per input channel: ``1 + J L (+ L^2 J (J - 1) / 2 at order 2)``."""
    return 1 + J * L + (L * L * J * (J - 1) // 2 if max_order == 2 else 0)


class ScatteringNet(nn.Module):
    """kymatio ``Scattering2D`` -> Std -> BatchNorm2d -> flatten -> Linear (module docstring)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, J: int, L: int = 8):
        super().__init__()
        from kymatio.torch import Scattering2D  # a runtime dependency of this baseline only

        if image_size % 2**J:
            raise ValueError(f"scattering with J={J} needs an image side divisible by {2**J}, got {image_size}")
        self.scattering = Scattering2D(J=J, shape=(image_size, image_size), L=L, max_order=2)
        self.channels = in_channels * scattering_channels(J, L)
        self.size = image_size // 2**J
        self.std = Standardization(0, self.channels)
        self.bn = GlobalBatchNorm2d(self.channels)
        self.fc = nn.Linear(self.channels * self.size * self.size, num_classes)

    def scatter(self, x: Tensor) -> Tensor:
        """Standardized scattering maps (B, C K, h, w) of images ``x`` (B, C, H, W)."""
        s = self.scattering(x.contiguous())  # (B, C, K, h, w)
        return self.std(SplitFeatures(real=s.flatten(1, 2))).real

    def layer_features(self, x: Tensor) -> list[Tensor]:
        """The one layer before the classifier: the standardized scattering maps."""
        return [self.scatter(x)]

    def head(self, features: Tensor) -> Tensor:
        """Logits (B, K) of the standardized scattering maps (:meth:`scatter`): BatchNorm2d, flatten, Linear."""
        return self.fc(torch.flatten(self.bn(features), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.scatter(x))
