/* Transcript writer (--transcript): any bytes recorded as a received frame, and split
 * into frames the way a sender's batch is, give whole JSON lines of kind "frame" that
 * parse back, with the input's size and bytes, and never a failed write. The file is
 * a temporary one, cut back after each input so it stays small. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "fuzz_util.h"
#include "transcript.h"

static kd3_transcript t;
static int read_fd = -1; /* the same file, for reading back (the transcript's is write-only) */

static void open_once(void)
{
	char path[] = "/tmp/kd3-fuzz-transcript-XXXXXX";
	char err[512];
	int fd;

	if (kd3_transcript_on(&t))
		return;
	fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0);
	close(fd);
	FUZZ_CHECK(kd3_transcript_open(&t, path, "fuzz", 0, err, sizeof(err)) == KD3_OK);
	read_fd = open(path, O_RDONLY | O_CLOEXEC);
	FUZZ_CHECK(read_fd >= 0);
	unlink(path); /* the open files stay ours */
}

/* Every line between start and the end of the file: JSON, a frame; the first one is
 * the whole input. Returns the number of lines. */
static size_t check_lines(long start, size_t size)
{
	long end = ftell(t.f);
	FUZZ_CHECK(end > start);
	size_t len = (size_t)(end - start);
	char *text = malloc(len + 1);
	FUZZ_CHECK(text && pread(read_fd, text, len, start) == (ssize_t)len);
	text[len] = '\0';
	FUZZ_CHECK(text[len - 1] == '\n');
	size_t lines = 0;
	for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
		*nl = '\0';
		cJSON *o = cJSON_Parse(line);
		FUZZ_CHECK(o != NULL);
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
		const cJSON *hex = cJSON_GetObjectItemCaseSensitive(o, "hex");
		FUZZ_CHECK(cJSON_IsString(kind) && strcmp(kind->valuestring, "frame") == 0);
		FUZZ_CHECK(cJSON_IsString(hex) && strlen(hex->valuestring) % 2 == 0);
		if (lines == 0) {
			const cJSON *sz = cJSON_GetObjectItemCaseSensitive(o, "size");
			FUZZ_CHECK(cJSON_IsNumber(sz) && (size_t)sz->valuedouble == size);
			FUZZ_CHECK(strlen(hex->valuestring) == 2 * size);
		}
		cJSON_Delete(o);
	}
	free(text);
	return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	open_once();
	long start = ftell(t.f);
	int fs = size > 0 && (data[size - 1] & 1);
	int last_inner = (int)(size % 6) - 1; /* -1 (not records) and KD3_R_* 1..4, and 0 */
	uint8_t *copy = fuzz_dup(data, size);
	kd3_tframe fr = {.session = 1,
	                 .dir = "I->R",
	                 .p = copy,
	                 .len = size,
	                 .fs = fs,
	                 .inner = size > 0 ? (int)(data[0] % 5) - 1 : -1,
	                 .generation = size > 1 ? data[1] : -1};

	kd3_transcript_frame(&t, &fr);
	kd3_transcript_frames_out(&t, 2, "R->I", copy, size, fs, last_inner, 7);
	FUZZ_CHECK(t.write_errno == 0);
	FUZZ_CHECK(check_lines(start, size) >= 2 || size == 0);
	free(copy);
	FUZZ_CHECK(ftruncate(fileno(t.f), start) == 0 && fseek(t.f, start, SEEK_SET) == 0);
	return 0;
}
