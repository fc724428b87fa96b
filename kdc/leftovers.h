/* kdc leftovers: the staging files of admin commands that were killed mid-write. */
#ifndef KDC_LEFTOVERS_H
#define KDC_LEFTOVERS_H

#include "options.h"

/* Before a command: every staging file (shared/privfile.h) nobody holds, in the
 * folders this command writes to (the stash's, the key file's, FILE's for dump, the
 * current one for a default ./NAME.key), is wiped and removed, each with a log line.
 * A killed `kdc add` left its key there, a killed `rekey-master` a whole master key.
 * KD3_E_USAGE, said, when the database, the stash, the key file or the dump has a
 * staging file's name: the sweep would take it for a leftover. */
int kdc_sweep_leftovers(const kdc_opts *o);

#endif
