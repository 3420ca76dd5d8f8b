/*
 * stdin_sim.c - the image's own `stdin`: none. Debian ships jansson (libjansson.a) without -fPIC, and
 * its load.o refers to glibc's `stdin` (json_loadf's "-" path, which the enclave never takes) with a
 * PC-relative relocation that a shared object cannot carry. This hidden definition resolves it inside
 * the image, as SGX's trusted libc would: an enclave has no standard input. Nothing reads it.
 */
#include <stdio.h>

__attribute__((visibility("hidden"))) FILE *stdin = NULL;
