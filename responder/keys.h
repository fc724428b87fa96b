/* responder: our long-term keys, from the key file into a kd3_key (include/kd3/kd3.h),
 * which every session copies. The library derives the subkeys once here for every
 * kvno (never per session) and the raw keys are wiped before returning. */
#ifndef RESP_KEYS_H
#define RESP_KEYS_H

#include <stddef.h>

#include <kd3/kd3.h>

/* *key for the principal name (the key file's own when name is "" or NULL), with
 * every key version of the file. err gets one line. KD3_E_KEYFILE(_PERMS) etc. */
int resp_keys_load(const char *path, const char *name, kd3_key **key, char *err, size_t err_len);

#endif
