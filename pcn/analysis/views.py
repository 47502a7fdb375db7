"""Where the separation measures are taken: the places of one forward pass, layer by layer.

Layer 0 is the input image (place ``input``). For layer ``j >= 1``:

* a phase-collapse network (block ``j``, :meth:`pcn.nn.phase_collapse.PhaseCollapseNet.probe_points`):
  ``before_rho`` = the band-pass wavelet coefficients :math:`x * \\psi_\\ell` (real and imaginary parts as
  channels), ``rho`` = :math:`\\rho(x * \\psi_\\ell)` on the same channels (before standardization and
  projection: where the paper's argument lives), ``block`` = the block output after the normalization N;
* a ResNet (the stem, then the 4 stages): ``before_rho`` and ``rho`` = the input and the output of the
  stage's last non-linearity call (after the residual sum), ``block`` = the stage output;
* a network without accessible non-linearities (the Scat baseline, whose modulus is inside kymatio):
  ``block`` only (its standardized scattering maps).

Every view is a real tensor (B, C, h, w), computed in evaluation mode.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _resnet_points(model: nn.Module, images: Tensor) -> list[dict[str, Tensor]]:
    """Hooks on the last non-linearity of every layer: its input and output at its last call."""
    captured: dict[int, dict[str, Tensor]] = {}
    hooks = []
    for j, modules in enumerate(model.nonlinearity_modules()):
        if not modules:
            continue
        slot = captured.setdefault(j, {})
        # inputs are cloned before the call: torchvision's ReLU works in place
        hooks.append(
            modules[-1].register_forward_pre_hook(
                lambda m, args, slot=slot: slot.__setitem__("before_rho", args[0].detach().clone())
            )
        )
        hooks.append(
            modules[-1].register_forward_hook(
                lambda m, args, out, slot=slot: slot.__setitem__("rho", out.detach().clone())
            )
        )
    try:
        blocks = model.layer_features(images)
    finally:
        for hook in hooks:
            hook.remove()
    return [{**captured.get(j, {}), "block": block} for j, block in enumerate(blocks)]


@torch.no_grad()
def layer_views(model: nn.Module, images: Tensor) -> list[dict[str, Tensor]]:
    """``[{place: (B, C, h, w)}]``: layer 0 (the input image) then every layer of ``model`` (module docstring)."""
    if hasattr(model, "probe_points"):
        layers = model.probe_points(images)
    elif hasattr(model, "nonlinearity_modules"):
        layers = _resnet_points(model, images)
    else:
        layers = [{"block": f} for f in model.layer_features(images)]
    return [{"input": images}] + layers
