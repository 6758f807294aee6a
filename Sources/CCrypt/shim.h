#ifndef CCRYPT_SHIM_H
#define CCRYPT_SHIM_H
/* libxcrypt 4.4 (Debian libcrypt-dev): crypt_r with bcrypt ($2a$, $2b$, $2y$) and yescrypt ($y$). */
#include <crypt.h>
#endif
