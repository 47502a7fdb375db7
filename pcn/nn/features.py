"""Split real/imaginary representation of mixed complex and real feature maps.

A phase-collapse block carries two kinds of channels: complex ones (wavelet
coefficients, projections) and real ones (moduli, block 0's low-pass). Keeping
them apart lets every operation skip the imaginary half of the real channels:
a complex 1x1 projection of a real channel costs 2 real multiplications instead
of 4. The channel order is always ``[complex channels..., real channels...]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SplitFeatures:
    """Feature maps made of ``Cc`` complex and ``Cr`` real channels.

    Attributes
    ----------
    re, im : Tensor or None
        Real and imaginary parts of the complex channels, each (B, Cc, H, W).
    real : Tensor or None
        Real-valued channels, (B, Cr, H, W).
    """

    re: Tensor | None = None
    im: Tensor | None = None
    real: Tensor | None = None

    @property
    def n_complex(self) -> int:
        return 0 if self.re is None else self.re.shape[1]

    @property
    def n_real(self) -> int:
        return 0 if self.real is None else self.real.shape[1]

    def any_tensor(self) -> Tensor:
        return self.re if self.re is not None else self.real

    @staticmethod
    def cat(parts: list["SplitFeatures"]) -> "SplitFeatures":
        """Concatenate along channels, keeping complex channels first."""

        def join(tensors):
            tensors = [t for t in tensors if t is not None]
            if not tensors:
                return None
            return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)

        return SplitFeatures(join([p.re for p in parts]), join([p.im for p in parts]), join([p.real for p in parts]))

    def to_complex(self) -> Tensor:
        """All channels as one complex tensor (B, Cc + Cr, H, W), real channels with zero imaginary part."""
        parts = []
        if self.re is not None:
            parts.append(torch.complex(self.re, self.im))
        if self.real is not None:
            parts.append(torch.complex(self.real, torch.zeros_like(self.real)))
        return torch.cat(parts, dim=1)

    def stacked_real(self) -> Tensor:
        """Real view ``[Re c, Im c, real]`` of shape (B, 2 Cc + Cr, H, W), for measurements."""
        return torch.cat([t for t in (self.re, self.im, self.real) if t is not None], dim=1)
