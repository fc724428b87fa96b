/* kdc key files in two steps, so that the database commit decides what lands:
 *
 *   kdc_stage_write    the new key file under a fresh name next to its final one
 *                      (PATH.new.XXXXXX, mode 0600, fsynced), before the commit;
 *   kdc_stage_publish  after the commit: renamed into place (atomically), then the
 *                      directory fsynced;
 *   kdc_stage_discard  when the commit failed: the staged file removed, the old key
 *                      file (if any) never touched.
 *
 * So a failed commit leaves the database and the key file as they were, and a crash
 * between commit and rename leaves the old key file (whose keys the database still
 * holds: rotate keeps every kvno) plus a staged file that `kdc export` can replace. */
#ifndef KDC_STAGE_H
#define KDC_STAGE_H

#include <limits.h>
#include <stddef.h>

#include "keyfile.h"

typedef struct kdc_stage {
	const char *path;   /* the final name */
	char tmp[PATH_MAX]; /* the staged file; "" when nothing is staged */
} kdc_stage;

int kdc_stage_write(kdc_stage *st, const char *path, const kd3_keyfile *kf, char *err,
                    size_t err_len);
/* Without overwrite, refuses (KD3_E_EXISTS) a path that exists by then. On failure the
 * staged file is discarded. */
int kdc_stage_publish(kdc_stage *st, int overwrite, char *err, size_t err_len);
void kdc_stage_discard(kdc_stage *st);

#endif
