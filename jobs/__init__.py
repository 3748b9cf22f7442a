"""Task entry points: read settings once, open storage and services, call the library."""

import os

# One BLAS thread per process, as the Makefile and the images export, set here for a task
# started any other way (before NumPy loads): the stages run their blocks side by side
# themselves, implicit's ALS wants it, and OpenBLAS's threaded kernels sum in another order,
# so a night's lists would depend on the machine's cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
