#ifndef CRDKAFKA_SHIM_H
#define CRDKAFKA_SHIM_H
/* Compiled against Debian's librdkafka-dev (2.0.2 headers): only APIs present in 2.0.2 may be used,
   even when a newer librdkafka.so.1 is loaded at run time. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
