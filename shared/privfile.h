/* kd3 private files: key files, the KDC's master key stash, dumps.
 *
 * Reading: the file is opened without following a symbolic link and without blocking
 * on a FIFO, and every check is made on what was opened (fstat), never on its name, so
 * nothing can be swapped in between: a regular file, at most max bytes, and with
 * KD3_PRIV_OWNER owned by this user (or root, with KD3_PRIV_ROOT_OK too) and not
 * readable or writable by group or others. A file that grows while it is read is
 * refused.
 * Writing: the whole content under a short temporary name next to the target (any
 * valid file name can be a target), mode 0600 from creation, locked by its writer,
 * fsynced, then renamed into place (without overwrite, atomically refusing
 * an existing name) and the directory fsynced: a crash leaves the old file or the new
 * one, never a part. Staging and publishing are separate steps for a caller whose own
 * commit decides whether the file lands (kdc add: the key file appears only once the
 * database has the key). Buffers that held the content are the caller's to wipe.
 * Reading is privfile.c, writing and the sweep privfile_stage.c. */
#ifndef KD3_PRIVFILE_H
#define KD3_PRIVFILE_H

#include <limits.h>
#include <stddef.h>

/* What kd3_privfile_read checks on the opened file (flags). */
enum {
	KD3_PRIV_ANY = 0,     /* a regular file, not a symbolic link */
	KD3_PRIV_OWNER = 1,   /* also: owned by this user, no access for group or others */
	KD3_PRIV_ROOT_OK = 2, /* with KD3_PRIV_OWNER: root may own it too (like ssh) */
};

/* Reads the whole file into a new buffer *out of *n bytes plus a NUL (the caller wipes
 * *n + 1 bytes and frees it). what names the kind in errors ("key", "stash").
 * KD3_E_NOT_FOUND when it does not exist, KD3_E_KEYFILE_PERMS for a mode or owner
 * refused, KD3_E_IO otherwise; err gets "path: reason". */
int kd3_privfile_read(const char *path, const char *what, int checks, size_t max, char **out,
                      size_t *n, char *err, size_t err_len);

/* The text of a key file or a stash: "name = value" lines, blanks trimmed, blank
 * lines and '#' comments skipped. fn(ctx, name, value, &why) takes each; it returns a
 * kd3_err and sets why when it refuses. A line longer than line_max bytes (at most
 * KD3_PRIVFILE_LINE_MAX), one holding a NUL byte or one without '=' (no_eq names what
 * was expected) fails too. err gets "path:line: why"; the line buffer is wiped. */
#define KD3_PRIVFILE_LINE_MAX 512
typedef int (*kd3_privfile_line_fn)(void *ctx, char *name, char *value, const char **why);
int kd3_privfile_each_line(const char *path, const char *text, size_t n, size_t line_max,
                           const char *no_eq, kd3_privfile_line_fn fn, void *ctx, char *err,
                           size_t err_len);

typedef struct kd3_staged_file {
	char path[PATH_MAX]; /* the final name */
	char tmp[PATH_MAX];  /* the staged file; "" when nothing is staged */
	int fd;              /* with tmp: it, open and flock()ed until publish or discard */
} kd3_staged_file;

/* Writes data under a temporary name next to path. The staged file is removed on
 * every failure, here and in publish. */
int kd3_privfile_stage(kd3_staged_file *st, const char *path, const void *data, size_t n, char *err,
                       size_t err_len);
/* Moves the staged file into place (KD3_E_EXISTS for an existing path unless
 * overwrite) and syncs the directory. */
int kd3_privfile_publish(kd3_staged_file *st, int overwrite, char *err, size_t err_len);
/* Wipes (zeros, synced) and removes the staged file; a file with a second name is
 * only unlinked. */
void kd3_privfile_discard(kd3_staged_file *st);
/* The folder part of path into out: "." when it has none, "/" for the root.
 * KD3_E_NO_SPACE when it does not fit. */
int kd3_privfile_folder(const char *path, char out[PATH_MAX]);

/* Crash leftovers: staging files in dir that no writer holds (a writer holds its flock
 * until publish). Each name is removed, then the file overwritten with zeros and
 * synced (WIPED) when no name reaches it and it is mode 0600; with another name (a move
 * into place cut between link and unlink, or a planted hard link) only the name goes
 * (UNLINKED). kd3 0.1's names (NAME.key.tmp.*, DB.stash.tmp.*), whose writers held no
 * lock, are taken the same way once 10 minutes old. Files that are another user's, not
 * regular, on a file system without locks, or recent 0.1 ones are LEFT. fn is told
 * each one, with the reason unless WIPED, and the size (-1 when unknown). Returns how
 * many names were removed. Zeroing is as good as the file system's overwrite in place. */
enum { KD3_SWEEP_WIPED, KD3_SWEEP_UNLINKED, KD3_SWEEP_LEFT };
typedef void (*kd3_privfile_sweep_fn)(void *ctx, const char *path, int outcome, long long size,
                                      const char *why);
int kd3_privfile_sweep(const char *dir, kd3_privfile_sweep_fn fn, void *ctx);

/* 1 when path's last component has the form of a staging file's name (ours,
 * .kd3-stage.XXXXXX, or kd3 0.1's *.key.tmp.XXXXXX, *.stash.tmp.XXXXXX): a file of such
 * a name is taken for a crash's leftover, so none may be a target. */
int kd3_privfile_is_staging_name(const char *path);
#define KD3_PRIVFILE_STAGING_REFUSED                                                               \
	"names of this form (.kd3-stage.XXXXXX, NAME.key.tmp.XXXXXX, NAME.stash.tmp.XXXXXX) "      \
	"are kd3's staging files, which kdc removes as crash leftovers; choose another name"

/* Without overwrite, KD3_E_EXISTS (said) when path exists: a writer's early refusal,
 * before it writes anything (publish checks again, atomically). */
int kd3_privfile_refuse_existing(const char *path, int overwrite, char *err, size_t err_len);

/* stage + publish; without overwrite an existing path is refused before writing. */
int kd3_privfile_write(const char *path, const void *data, size_t n, int overwrite, char *err,
                       size_t err_len);

#endif
