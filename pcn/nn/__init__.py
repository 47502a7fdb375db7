"""The networks: Morlet filters, wavelet filtering backends, non-linearities, Std / Pc / N layers,
the phase-collapse network (LScat, LScat+skip), the bias-free ResNet-18 and the reference's
formulation. Depends on torch and numpy only: usable without the pipeline."""
