"""The signature: what a key makes of a label, and how it is applied to a clip.

params.py (the public parameters, their ranges and the levels), filters.py (each label's filter,
designed per sample rate), layout.py (where in a clip it applies), kernel.py and direct.py (FIR
convolution: FFT blocks on an absolute grid, numba for short filters), transform.py (a clip
through its label's plan, in place, with the samples it changed and clipped). The key (key.py)
draws a label's plan from these; the tree pipeline (protect, stream, containers) applies it.
"""
