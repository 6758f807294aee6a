#ifndef CARGON2_SHIM_H
#define CARGON2_SHIM_H
/* libargon2 (Debian libargon2-dev), the reference implementation: argon2i, argon2d and argon2id password hashes. */
#include <argon2.h>
#endif
