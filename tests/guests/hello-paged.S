/* Hello world in 32-bit paged mode: the protected-mode guest, unchanged. */
#include "hello-protected.S"
