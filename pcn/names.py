"""Every name params.yaml can choose, in one place: the schema validates against these lists, and the
implementations build their registries from them (a leaf of the import graph: it imports nothing).

The non-linearities come with their *family*, which the report and the paper's claims read
(:mod:`pcn.analysis.claims`): a claim about phase-preserving non-linearities takes in every name of that
family. For a complex channel :math:`z = |z| e^{i\\varphi}` (a real channel: :math:`x = |x| \\operatorname{sign} x`,
the sign being the phase of a real number):

* **phase collapse** (:data:`PHASE_COLLAPSE`): :math:`\\rho(z)` depends on :math:`|z|` only, so the phase is
  lost and with it the sign that averages class means of wavelet coefficients out. The LScat ``mod``
  (:math:`|z|`), the ResNet ``abs`` (:math:`|x|`) and ``absdead`` (:math:`\\mathrm{ReLU}(|x| - b)`: the even
  part of a biased ReLU, :math:`\\rho(-x) = \\rho(x)`, an absolute value with a dead zone), the Scat baseline's
  modulus.
* **phase preserving** (:data:`PHASE_PRESERVING`): :math:`\\rho(z) = f(|z|)\\, z / |z|` with :math:`f \\ge 0`
  (and :math:`\\rho` not linear), so the output keeps the phase (the sign) of its input and changes its
  amplitude only. The LScat
  ``cst`` (soft-thresholding), ``ms`` (modulus-sigmoid), ``mc`` (module collapse, :math:`f = 1`), ``tanh``;
  the ResNet ``thresh`` (soft-thresholding, the odd part of a biased ReLU), ``tanh`` and ``powfixed``
  (:math:`x / (1 + |x|)`), both odd.
* **other** (:data:`OTHER`): neither. ``relu`` (LScat: the ReLU of the real and imaginary parts; ResNet and
  the standard ResNet: :math:`\\max(x, 0)`) depends on the phase but does not keep it: it maps the third
  quadrant (the negative numbers) to zero and the second and fourth onto the axes, so it is neither a
  function of :math:`|z|` alone nor :math:`f(|z|)` times the phase. ``identity`` is linear: a control without any
  non-linearity, which the claims about (phase-preserving) non-linearities leave out.
"""

#: The data sets (pcn.data.datasets), and the images per class of mnist5k.
DATASETS = ("mnist5k", "translated_mnist", "cifar10", "imagenet", "synthetic")
MNIST5K_PER_CLASS = 500
#: Training augmentations (pcn.data.augment).
AUGMENTATIONS = ("none", "cifar", "imagenet", "translate")
#: How the fixed wavelet filtering is computed (pcn.nn.backends): the same function, at different speeds.
BACKENDS = ("auto", "fft", "fft_smooth", "spatial", "matrix")
#: First layers of the ResNets (pcn.nn.resnet): torchvision's 7x7/2 convolution and max-pool, or a 3x3
#: convolution of stride 1 (``small``) or 2 (``strided``) without max-pool.
STEMS = ("imagenet", "small", "strided")

#: The two block layouts of the learned scattering (pcn.nn.phase_collapse).
LSCAT_ARCHITECTURES = ("lscat", "lscat_skip")
#: The bias-free ResNet-18 (pcn.nn.resnet.BiasFreeResNet18).
RESNET_ARCHITECTURE = "resnet18"
#: torchvision's ResNet-18 with biases and ReLU (pcn.nn.resnet.StandardResNet18).
STANDARD_RESNET_ARCHITECTURE = "resnet18_standard"
#: The Scat baseline: kymatio's scattering, predefined projections (pcn.nn.scattering).
SCAT_ARCHITECTURE = "scat"
ARCHITECTURES = (*LSCAT_ARCHITECTURES, RESNET_ARCHITECTURE, STANDARD_RESNET_ARCHITECTURE, SCAT_ARCHITECTURE)

#: The families of non-linearities (module docstring).
PHASE_COLLAPSE, PHASE_PRESERVING, OTHER = "phase collapse", "phase preserving", "other"
FAMILIES = (PHASE_COLLAPSE, PHASE_PRESERVING, OTHER)
#: The non-linearities of the LScat blocks (pcn.nn.nonlinearities), each with its family.
LSCAT_FAMILIES = {
    "mod": PHASE_COLLAPSE,
    "cst": PHASE_PRESERVING,
    "ms": PHASE_PRESERVING,
    "mc": PHASE_PRESERVING,
    "tanh": PHASE_PRESERVING,
    "relu": OTHER,
    "identity": OTHER,
}
#: The non-linearities of the bias-free ResNet-18 (pcn.nn.nonlinearities), each with its family.
RESNET_FAMILIES = {
    "relu": OTHER,
    "abs": PHASE_COLLAPSE,
    "thresh": PHASE_PRESERVING,
    "absdead": PHASE_COLLAPSE,
    "tanh": PHASE_PRESERVING,
    "powfixed": PHASE_PRESERVING,
    "identity": OTHER,
}
LSCAT_NONLINEARITIES = tuple(LSCAT_FAMILIES)
RESNET_NONLINEARITIES = tuple(RESNET_FAMILIES)
#: The ResNet non-linearities with a per-channel threshold ``b``.
THRESHOLDED = ("thresh", "absdead")
#: Per architecture, its valid non-linearities with their families (the baselines' are fixed: the
#: scattering's modulus, torchvision's ReLU).
NONLINEARITY_FAMILIES = {
    **dict.fromkeys(LSCAT_ARCHITECTURES, LSCAT_FAMILIES),
    RESNET_ARCHITECTURE: RESNET_FAMILIES,
    STANDARD_RESNET_ARCHITECTURE: {"relu": OTHER},
    SCAT_ARCHITECTURE: {"mod": PHASE_COLLAPSE},
}

#: Training devices (pcn.train.device): CUDA when present (``auto``), or forced.
DEVICES = ("auto", "cpu", "cuda")
#: How the train stage starts its processes (pcn.train.distributed): in its own process, or under torchrun.
LAUNCHERS = ("python", "torchrun")
#: Which model a run keeps (pcn.train.loop): the last epoch's, or the best test epoch's.
SELECTIONS = ("last", "best")


def nonlinearities_of(arch: str) -> tuple[str, ...]:
    """The valid non-linearities of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    return tuple(NONLINEARITY_FAMILIES[arch])


def of_family(arch: str, family: str) -> tuple[str, ...]:
    """The non-linearities of ``arch`` in ``family`` (one of :data:`FAMILIES`), in their listed order."""
    return tuple(name for name, f in NONLINEARITY_FAMILIES[arch].items() if f == family)
