"""Fixed wavelet filtering ``Fw`` of one block: depthwise ``[x * phi, x * psi_1 .. x * psi_L]``.

:class:`WaveletFilter` owns the block's geometry (padding, subsampling, crop: see
:mod:`pcn.nn.geometry`), its filters and the split of the outputs into the low-pass and
band-pass parts; the arithmetic is delegated to one backend of :mod:`pcn.nn.backends`,
chosen by the setting ``backend`` (``network.filter_backend`` in params.yaml; ``auto`` applies
:func:`pcn.nn.backends.choose_backend`). Every backend computes the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pcn.nn.backends import build_backend
from pcn.nn.features import SplitFeatures
from pcn.nn.geometry import FilterGeometry
from pcn.nn.morlet import BandPassSpec, fourier_filters


class WaveletFilter(nn.Module):
    """Depthwise filtering of every input channel by ``L + 1`` fixed filters.

    Parameters
    ----------
    in_channels : int
        Number of input channels ``C``.
    real_input : bool
        True for a real input (block 0): the low-pass output then stays real.
    size : tuple of int
        Input spatial size ``(M, N)``.
    spec : BandPassSpec
        Filter parameters (sigma, xi, slant, low-pass sigma, subsampling).
    n_angles, full_angles
        Number and span of orientations.
    backend : str
        One of :data:`pcn.nn.backends.BACKENDS`.
    kernel_tolerance : float
        Relative truncation threshold of the spatial kernels (``fft_smooth``, ``spatial``).

    Forward returns ``(low, band)``: ``low`` has ``C`` channels (real for a real input,
    complex otherwise), ``band`` has ``C * L`` complex channels in input-channel-major
    order (index ``c * L + l``). The filters are buffers derived from the configuration,
    not saved in checkpoints.
    """

    def __init__(
        self,
        in_channels: int,
        real_input: bool,
        size: tuple[int, int],
        spec: BandPassSpec,
        n_angles: int,
        full_angles: bool,
        backend: str,
        kernel_tolerance: float,
    ):
        super().__init__()
        M, N = size
        if min(M, N) < 3:
            raise ValueError(
                f"wavelet filtering needs inputs of at least 3x3 pixels, got {M}x{N}: "
                "too many blocks for this image size"
            )
        self.geometry = FilterGeometry(in_channels, real_input, (M, N), n_angles, spec.subsample)
        fourier = fourier_filters(*self.geometry.padded, spec, n_angles, full_angles)  # (L+1, Mp, Np) float64
        self.register_buffer("fourier", torch.tensor(fourier, dtype=torch.float32), persistent=False)
        self.backend = build_backend(backend, self.geometry, fourier, kernel_tolerance)

    @property
    def out_size(self) -> tuple[int, int]:
        return self.geometry.out_size

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def extra_repr(self) -> str:
        g = self.geometry
        return f"in_channels={g.in_channels}, size={g.size}, real_input={g.real_input}, subsample={g.subsample}"

    def forward(self, x: SplitFeatures) -> tuple[SplitFeatures, SplitFeatures]:
        self._check(x)
        with torch.autocast(x.any_tensor().device.type, enabled=False):  # filtering stays in float32 under AMP
            re, im = self.backend(x)  # (B, C, L+1, H', W') each
        return self._split(re, im)

    def _check(self, x: SplitFeatures) -> None:
        g = self.geometry
        t = x.any_tensor()
        expected = (g.in_channels, *g.size)
        if tuple(t.shape[1:]) != expected or (x.n_real > 0) != g.real_input:
            raise ValueError(
                f"WaveletFilter expects {'real' if g.real_input else 'complex'} input of "
                f"shape (B, {expected[0]}, {expected[1]}, {expected[2]}), got "
                f"{x.n_complex} complex + {x.n_real} real channels of size {tuple(t.shape[2:])}"
            )

    def _split(self, re: Tensor, im: Tensor) -> tuple[SplitFeatures, SplitFeatures]:
        """(B, C, L+1, H, W) parts -> (low, band), band channels ``c * L + l``.

        For a real input the low-pass output is real: its (zero) imaginary part is dropped.
        """
        B, C, _, H, W = re.shape
        L = self.geometry.n_angles
        low_re, band_re = re.split([1, L], dim=2)
        low_im, band_im = im.split([1, L], dim=2)
        if self.geometry.real_input:
            low = SplitFeatures(real=low_re.reshape(B, C, H, W))
        else:
            low = SplitFeatures(re=low_re.reshape(B, C, H, W), im=low_im.reshape(B, C, H, W))
        return low, SplitFeatures(re=band_re.reshape(B, C * L, H, W), im=band_im.reshape(B, C * L, H, W))
