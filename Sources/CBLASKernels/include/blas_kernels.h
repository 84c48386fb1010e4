#ifndef FEDTRAIN_BLAS_KERNELS_H
#define FEDTRAIN_BLAS_KERNELS_H

/// The OpenBLAS kernel set fedtrain chose at load time in place of OpenBLAS's generic fallback,
/// or NULL when it left OpenBLAS's own choice (see blas_kernels.c).
const char *fedtrain_blas_kernels_chosen(void);

#endif
