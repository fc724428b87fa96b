/* kd3 crash points: fault injection for the crash-safety tests. With
 * KD3_KDC_CRASH_AT=WHERE in the environment the process kills itself (SIGKILL: no
 * cleanup, as in a power cut as far as SQLite and the stash file are concerned) when it
 * reaches the point named WHERE. Unset, a point costs one getenv; no secret is involved.
 * The points: init-stash-written, upgrade-stash-written, upgrade-before-commit,
 * import-before-commit, rekey-stash-both, rekey-resealed, rekey-committed (kdc/), and
 * file-staged (shared/privfile_stage.c: a key file, a stash or a dump written under its
 * staging name and synced, not moved into place yet). */
#ifndef KD3_CRASHPOINT_H
#define KD3_CRASHPOINT_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static inline void kd3_crash_point(const char *where)
{
	const char *at = getenv("KD3_KDC_CRASH_AT");
	if (at && strcmp(at, where) == 0)
		raise(SIGKILL);
}

#endif
