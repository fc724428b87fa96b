/* responder: our long-term keys, from the key file into the state machine's config.
 * Subkeys are derived once here for every kvno (never per request) and the raw keys
 * are wiped before returning. */
#ifndef RESP_KEYS_H
#define RESP_KEYS_H

#include <stddef.h>

#include "crypto.h"
#include "peer.h"

/* Fills cfg->keys, cfg->nkeys and, when name is "" or NULL, cfg->self with the key
 * file's principal (else with name). err gets one line. KD3_E_KEYFILE(_PERMS) etc. */
int resp_keys_load(const char *path, const char *name, kd3_crypto *c, kd3_peer_config *cfg,
                   char *err, size_t err_len);

#endif
