/* kd3adv: the tape of a run, in memory and in a recording file (adv_tape.h). */
#include "adv_tape.h"

#include <stdlib.h>
#include <string.h>

/* The longest line of a recording: a tag list and the hex of the largest datagram. */
#define TAPE_LINE_MAX (2 * ADV_DGRAM_MAX + 256)

void adv_tape_init(adv_tape *t)
{
	memset(t, 0, sizeof(*t));
}

void adv_tape_free(adv_tape *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i].bytes);
	free(t->e);
	memset(t, 0, sizeof(*t));
}

int adv_tape_add(adv_tape *t, const adv_seen *seen, const uint8_t *p, size_t len)
{
	if (t->n >= ADV_TAPE_FRAMES || t->bytes + len > ADV_TAPE_BYTES)
		return -1;
	if (!t->e && !(t->e = calloc(ADV_TAPE_FRAMES, sizeof(*t->e))))
		return -1;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -1;
	memcpy(copy, p, len);
	t->e[t->n].seen = *seen;
	t->e[t->n].bytes = copy;
	t->e[t->n].len = len;
	t->n++;
	t->bytes += len;
	return 0;
}

const adv_tape_entry *adv_tape_find(const adv_tape *t, int dir, int kind, unsigned index)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].seen.dir == dir && t->e[i].seen.idx[kind] == index)
			return &t->e[i];
	return NULL;
}

int adv_tape_write(FILE *f, const adv_seen *seen, const uint8_t *p, size_t len)
{
	static char hex[2 * ADV_DGRAM_MAX + 1];

	if (len > ADV_DGRAM_MAX)
		return -1;
	fprintf(f, "%s/%s", adv_dir_name(seen->dir), adv_transport_name(seen->transport));
	for (int k = 0; k < ADV_NKINDS; k++)
		if (seen->idx[k])
			fprintf(f, " %s#%u", adv_kind_name(k), seen->idx[k]);
	adv_hex_encode(p, len, hex);
	fprintf(f, " %s\n", hex);
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

/* "I->R/tcp" */
static int parse_where(const char *tok, adv_seen *seen)
{
	const char *slash = strchr(tok, '/');
	if (!slash)
		return -1;
	seen->dir = adv_dir_parse(tok, (size_t)(slash - tok));
	if (strcmp(slash + 1, "tcp") == 0)
		seen->transport = ADV_TCP;
	else if (strcmp(slash + 1, "udp") == 0)
		seen->transport = ADV_UDP;
	else
		return -1;
	return seen->dir < 0 ? -1 : 0;
}

/* "M1#1" */
static int parse_tag(const char *tok, adv_seen *seen)
{
	const char *hash = strchr(tok, '#');
	char *end;
	if (!hash)
		return -1;
	int kind = adv_kind_parse(tok, (size_t)(hash - tok));
	unsigned long idx = strtoul(hash + 1, &end, 10);
	if (kind < 0 || *end != '\0' || idx == 0 || idx > ADV_TAPE_FRAMES * 16ul)
		return -1;
	seen->idx[kind] = (unsigned)idx;
	return 0;
}

/* One line, cut at its spaces in place. */
static int parse_line(adv_tape *t, char *line, uint8_t *frame)
{
	char *save = NULL, *tok = strtok_r(line, " \n", &save), *last = NULL;
	adv_seen seen;

	memset(&seen, 0, sizeof(seen));
	if (!tok || parse_where(tok, &seen) != 0)
		return -1;
	while ((tok = strtok_r(NULL, " \n", &save)) != NULL) {
		if (last && parse_tag(last, &seen) != 0)
			return -1;
		last = tok;
	}
	if (!last)
		return -1;
	long len = adv_hex_decode(last, strlen(last), frame, ADV_DGRAM_MAX);
	if (len < 0)
		return -1;
	return adv_tape_add(t, &seen, frame, (size_t)len);
}

int adv_tape_load(adv_tape *t, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	char *line = malloc(TAPE_LINE_MAX);
	uint8_t *frame = malloc(ADV_DGRAM_MAX);
	unsigned lineno = 0;
	int ret = 0;

	if (!f || !line || !frame) {
		snprintf(err, err_len, "cannot read %s", path);
		ret = -1;
	}
	while (ret == 0 && fgets(line, TAPE_LINE_MAX, f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, err_len, "%s:%u: line too long", path, lineno);
			ret = -1;
		} else if (parse_line(t, line, frame) != 0) {
			snprintf(err, err_len, "%s:%u: not a recorded frame (or the tape is full)",
			         path, lineno);
			ret = -1;
		}
	}
	if (f)
		fclose(f);
	free(line);
	free(frame);
	return ret;
}
