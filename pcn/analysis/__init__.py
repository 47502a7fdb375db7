"""What the trained networks show: per-layer class separation, statistics over seeds, the report
and its figures."""
