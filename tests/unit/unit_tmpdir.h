/* Unit-test helper: a scratch folder under /tmp, removed with what it holds. */
#ifndef KD3_UNIT_TMPDIR_H
#define KD3_UNIT_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Removes every entry of dir (files, or empty folders), then dir. 0 on success. */
static inline int tmpdir_remove(const char *dir)
{
	char p[512];
	struct dirent *e;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) != 0)
			rmdir(p);
	}
	closedir(d);
	return rmdir(dir);
}

#endif
