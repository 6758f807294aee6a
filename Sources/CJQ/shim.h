#ifndef CJQ_SHIM_H
#define CJQ_SHIM_H
/* libjq 1.6 (Debian libjq-dev; no pkg-config file, hence `link "jq"` in the module map).
   jq.h uses FILE without including stdio.h in every version, so include it first. */
#include <stdio.h>
#include <jv.h>
#include <jq.h>
#endif
