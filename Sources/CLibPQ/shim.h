#ifndef WEBHOOKY_CLIBPQ_SHIM_H
#define WEBHOOKY_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
