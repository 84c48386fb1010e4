// OpenBLAS's CBLAS interface and LAPACKE, as Debian's libopenblas-dev and liblapacke-dev install them.
#include <cblas.h>
#include <lapacke.h>

// Declared by OpenBLAS's cblas.h already; repeated so the intent (thread control) is explicit here.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
