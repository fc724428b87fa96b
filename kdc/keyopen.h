/* kdc key opener: opens many sealed keys (kdc/seal.h) on several threads while the
 * caller goes on reading the database, so loading a large table costs about the time
 * of the read alone. The caller queues each blob with where its key goes; opener
 * threads, each with an AEAD context of its own, open them in chunks; finish opens what
 * is left on the caller's thread, waits for the others, and reports the first blob
 * that did not open. Keys are written only into the caller's (locked) memory; the
 * queued blobs are not secret. */
#ifndef KDC_KEYOPEN_H
#define KDC_KEYOPEN_H

#include <stddef.h>
#include <stdint.h>

#include "seal.h"

typedef struct kdc_keyopen kdc_keyopen;

/* threads: opener threads beside the caller (0: everything opens in finish). m stays
 * the caller's and must outlive finish. */
int kdc_keyopen_start(kdc_keyopen **ko, kdc_master *m, size_t threads, char *err, size_t err_len);
/* Queues one blob: out (KD3_KEY_LEN bytes) gets its key. name must stay valid until
 * finish (its bytes are the blob's associated data). */
int kdc_keyopen_add(kdc_keyopen *ko, const char *name, uint32_t kvno,
                    const uint8_t sealed[KDC_SEALED_LEN], uint8_t *out);
/* Opens what is queued, joins the threads and frees ko (NULL is fine). KD3_E_BLOB_AUTH
 * when a blob did not open, with err (unless NULL) naming the database at path, the
 * principal and the kvno (that out is wiped; the others hold keys: the caller wipes
 * them all). */
int kdc_keyopen_finish(kdc_keyopen *ko, const char *path, char *err, size_t err_len);

#endif
