/* kdc private files (the master key stash, dumps): read with the same checks as key
 * files, written atomically with mode 0600 (temporary file next to the target, fsync,
 * rename, fsync of the directory), so a crash leaves the old file or the new one. */
#ifndef KDC_PRIVFILE_H
#define KDC_PRIVFILE_H

#include <stddef.h>

/* What kdc_privfile_read checks on the opened file (never on its name). */
enum {
	KDC_PRIV_ANY = 0,   /* a regular file, not a symbolic link */
	KDC_PRIV_OWNER = 1, /* also: owned by this user, not readable by group or others */
};

/* Reads the whole file (at most max bytes) into a new buffer *out of *n bytes plus a
 * NUL (the caller wipes *n + 1 bytes and frees it). what names the file in errors ("stash").
 * KD3_E_NOT_FOUND when it does not exist, KD3_E_KEYFILE_PERMS for a mode or owner refused. */
int kdc_privfile_read(const char *path, const char *what, int checks, size_t max, char **out,
                      size_t *n, char *err, size_t err_len);

/* Writes data as the whole file, mode 0600. Without overwrite an existing path is
 * refused (KD3_E_EXISTS), atomically. */
int kdc_privfile_write(const char *path, const void *data, size_t n, int overwrite, char *err,
                       size_t err_len);

#endif
