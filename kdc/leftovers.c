/* kdc leftovers (leftovers.h). */
#include "leftovers.h"

#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "log.h"
#include "privfile.h"
#include "stash.h"

#define SWEEP_DIRS_MAX 4

static void told(void *ctx, const char *path, int outcome, long long size, const char *why)
{
	(void)ctx;
	if (outcome == KD3_SWEEP_WIPED)
		kd3_log_info("removed %s (%lld bytes, overwritten with zeros first): a staging "
		             "file left by a kdc command that did not finish",
		             path, size);
	else if (outcome == KD3_SWEEP_UNLINKED)
		kd3_log_info("removed %s (%lld bytes; %s): a staging file left by a kdc command "
		             "that did not finish",
		             path, size, why);
	else
		kd3_log_info("warning: %s looks like a kd3 staging file but is left alone: %s",
		             path, why);
}

/* Adds the folder of path unless it is one already listed (the same inode). */
static void add_folder(const char *path, char dirs[][PATH_MAX], struct stat *seen, size_t *n)
{
	struct stat sb;
	if (*n >= SWEEP_DIRS_MAX || !path || !path[0] ||
	    kd3_privfile_folder(path, dirs[*n]) != KD3_OK)
		return;
	if (stat(dirs[*n], &sb) != 0 || !S_ISDIR(sb.st_mode))
		return;
	for (size_t i = 0; i < *n; i++)
		if (seen[i].st_dev == sb.st_dev && seen[i].st_ino == sb.st_ino)
			return;
	seen[(*n)++] = sb;
}

/* A file of ours under a staging file's name would be swept as a leftover. */
static int named_like_staging(const char *path)
{
	if (!path || !path[0] || !kd3_privfile_is_staging_name(path))
		return 0;
	kd3_log_error("%s: %s", path, KD3_PRIVFILE_STAGING_REFUSED);
	return 1;
}

int kdc_sweep_leftovers(const kdc_opts *o)
{
	char dirs[SWEEP_DIRS_MAX][PATH_MAX], stash[PATH_MAX];
	struct stat seen[SWEEP_DIRS_MAX];
	size_t n = 0;
	int have_stash = kdc_stash_path(o->db, o->stash, stash) == KD3_OK;
	const char *dump =
	    o->cmd && strcmp(o->cmd->name, "dump") == 0 && o->nargs > 0 ? o->args[0] : NULL;

	if (named_like_staging(strstr(o->db, "://") ? NULL : o->db) ||
	    named_like_staging(have_stash ? stash : NULL) || named_like_staging(o->keyfile) ||
	    named_like_staging(dump))
		return KD3_E_USAGE;
	if (have_stash)
		add_folder(stash, dirs, seen, &n);
	add_folder(o->keyfile, dirs, seen, &n);
	add_folder(dump, dirs, seen, &n);
	/* The current folder only for a command about to write ./NAME.key there: it may be
	 * anyone's (/tmp), and is no business of `kdc list` run in it. */
	if (o->cmd && (o->cmd->takes & KDC_TAKES_KEYFILE) && !o->keyfile[0])
		add_folder("./NAME.key", dirs, seen, &n);
	for (size_t i = 0; i < n; i++)
		kd3_privfile_sweep(dirs[i], told, NULL);
	return KD3_OK;
}
