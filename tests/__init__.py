"""The test suite. Importing it pins the CPU kernels that BLAS, MKL and ATen pick at load time,
before any test imports numpy or torch.

The same code on the same data gives floats that differ in the last bits between an AVX2 and an
AVX-512 machine, or an Intel and an AMD one: each library dispatches to its own kernels per CPU.
Tests that compare against a golden fingerprint need one answer on every CI machine, so the suite
runs the AVX2 kernels that any x86-64 server has. A variable already set is kept.
"""

import os

KERNEL_PINS = {
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS: implicit's ALS, the GEMMs
    "MKL_CBWR": "AVX2",  # torch's MKL matmuls (conditional numerical reproducibility)
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised ops (softmax, layer norm, GELU)
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # One BLAS thread, as ``make test`` exports: threaded kernels sum in another order.
    "OPENBLAS_NUM_THREADS": "1",
}
for _name, _value in KERNEL_PINS.items():
    os.environ.setdefault(_name, _value)
