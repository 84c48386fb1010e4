// Header-only module: cmalloc.h exposes <malloc.h> to Swift (SwiftPM needs a source file).
#include "cmalloc.h"
