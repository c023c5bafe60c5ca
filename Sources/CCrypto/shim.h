#ifndef WEBHOOKY_CCRYPTO_SHIM_H
#define WEBHOOKY_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#endif
