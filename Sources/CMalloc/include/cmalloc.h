#ifndef FEDTRAIN_CMALLOC_H
#define FEDTRAIN_CMALLOC_H
// glibc's allocator settings (mallopt), which Swift's Glibc module does not import.
#include <malloc.h>
#endif
