"""What every layer of netpatch shares and no layer owns: the typed errors, size limits and
the one-BLAS-thread rule of a job."""
