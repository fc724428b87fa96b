/* kdc key opener: a bounded queue of chunks between the reading thread and the openers. */
#include "keyopen.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "reload.h"

#define CHUNK_JOBS  512 /* blobs per chunk: one queue handoff per 512 opens */
#define CHUNKS      16
#define THREADS_MAX 16

struct job {
	const char *name;
	uint32_t kvno;
	uint8_t sealed[KDC_SEALED_LEN];
	uint8_t *out;
};

struct chunk {
	size_t n;
	struct job job[CHUNK_JOBS];
};

struct opener {
	kdc_keyopen *ko;
	kdc_master m; /* an AEAD context of its own */
	pthread_t thread;
};

struct kdc_keyopen {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a chunk queued, or closing */
	pthread_cond_t room; /* a chunk came back */
	struct chunk chunks[CHUNKS];
	size_t free_ids[CHUNKS], nfree;
	size_t queue[CHUNKS], qhead, qlen;
	struct chunk *filling; /* the caller's, not queued yet */
	int closing;
	int failed; /* set once; every out is wiped at finish then */
	char failed_name[KD3_NAME_MAX + 1];
	uint32_t failed_kvno;
	kdc_master *caller;
	struct opener openers[THREADS_MAX];
	size_t nthreads;
};

static void open_chunk(kdc_keyopen *ko, kdc_master *m, struct chunk *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct job *j = &c->job[i];
		if (kdc_master_open(m, j->name, j->kvno, j->sealed, j->out) == KD3_OK)
			continue;
		pthread_mutex_lock(&ko->mu);
		if (!ko->failed) {
			ko->failed = 1;
			snprintf(ko->failed_name, sizeof(ko->failed_name), "%s", j->name);
			ko->failed_kvno = j->kvno;
		}
		pthread_mutex_unlock(&ko->mu);
	}
}

/* Under mu: the next queued chunk, or NULL when there is none. */
static struct chunk *queue_pop(kdc_keyopen *ko)
{
	if (ko->qlen == 0)
		return NULL;
	struct chunk *c = &ko->chunks[ko->queue[ko->qhead]];
	ko->qhead = (ko->qhead + 1) % CHUNKS;
	ko->qlen--;
	return c;
}

/* Under mu. */
static void queue_push(kdc_keyopen *ko, struct chunk *c)
{
	ko->queue[(ko->qhead + ko->qlen) % CHUNKS] = (size_t)(c - ko->chunks);
	ko->qlen++;
	pthread_cond_signal(&ko->work);
}

static void chunk_return(kdc_keyopen *ko, struct chunk *c)
{
	pthread_mutex_lock(&ko->mu);
	c->n = 0;
	ko->free_ids[ko->nfree++] = (size_t)(c - ko->chunks);
	pthread_cond_signal(&ko->room);
	pthread_mutex_unlock(&ko->mu);
}

static void *opener_main(void *arg)
{
	struct opener *o = arg;
	kdc_keyopen *ko = o->ko;
	for (;;) {
		pthread_mutex_lock(&ko->mu);
		struct chunk *c;
		while (!(c = queue_pop(ko)) && !ko->closing)
			pthread_cond_wait(&ko->work, &ko->mu);
		pthread_mutex_unlock(&ko->mu);
		if (!c) {
			kdc_stack_scrub(); /* what the AEAD left below us: a thread's stack is
			                      reused */
			return NULL;
		}
		open_chunk(ko, &o->m, c);
		chunk_return(ko, c);
	}
}

int kdc_keyopen_start(kdc_keyopen **out, kdc_master *m, size_t threads, char *err, size_t err_len)
{
	kdc_keyopen *ko = calloc(1, sizeof(*ko));
	*out = NULL;
	if (!ko) {
		snprintf(err, err_len, "out of memory for the key opener");
		return KD3_E_NOMEM;
	}
	pthread_mutex_init(&ko->mu, NULL);
	pthread_cond_init(&ko->work, NULL);
	pthread_cond_init(&ko->room, NULL);
	for (size_t i = 0; i < CHUNKS; i++)
		ko->free_ids[ko->nfree++] = i;
	ko->caller = m;
	/* Fewer threads than asked (no memory, no thread) is slower, never wrong. */
	for (size_t i = 0; i < threads && i < THREADS_MAX; i++) {
		struct opener *o = &ko->openers[ko->nthreads];
		o->ko = ko;
		if (kdc_master_opener(&o->m, m) != KD3_OK)
			break;
		if (pthread_create(&o->thread, NULL, opener_main, o) != 0) {
			kdc_master_free(&o->m);
			break;
		}
		ko->nthreads++;
	}
	*out = ko;
	return KD3_OK;
}

/* A chunk to fill: a free one, or, with none free, one taken back from the queue and
 * opened here (the openers are behind: the caller helps rather than waits). */
static struct chunk *chunk_take(kdc_keyopen *ko)
{
	pthread_mutex_lock(&ko->mu);
	struct chunk *c = NULL;
	if (ko->nfree)
		c = &ko->chunks[ko->free_ids[--ko->nfree]];
	else
		c = queue_pop(ko);
	pthread_mutex_unlock(&ko->mu);
	if (c && c->n) {
		open_chunk(ko, ko->caller, c);
		c->n = 0;
	}
	return c;
}

int kdc_keyopen_add(kdc_keyopen *ko, const char *name, uint32_t kvno,
                    const uint8_t sealed[KDC_SEALED_LEN], uint8_t *out)
{
	if (!ko->filling) {
		ko->filling = chunk_take(ko);
		if (!ko->filling) { /* every chunk is being opened: wait for one */
			pthread_mutex_lock(&ko->mu);
			while (!ko->nfree)
				pthread_cond_wait(&ko->room, &ko->mu);
			ko->filling = &ko->chunks[ko->free_ids[--ko->nfree]];
			pthread_mutex_unlock(&ko->mu);
		}
	}
	struct job *j = &ko->filling->job[ko->filling->n++];
	j->name = name;
	j->kvno = kvno;
	memcpy(j->sealed, sealed, KDC_SEALED_LEN);
	j->out = out;
	if (ko->filling->n == CHUNK_JOBS) {
		pthread_mutex_lock(&ko->mu);
		queue_push(ko, ko->filling);
		pthread_mutex_unlock(&ko->mu);
		ko->filling = NULL;
	}
	return KD3_OK;
}

/* Every out of every chunk ever queued is in the caller's table: the caller wipes the
 * table on failure, so here only the error is said. */
int kdc_keyopen_finish(kdc_keyopen *ko, const char *path, char *err, size_t err_len)
{
	if (!ko)
		return KD3_OK;
	if (ko->filling)
		open_chunk(ko, ko->caller, ko->filling);
	pthread_mutex_lock(&ko->mu);
	ko->closing = 1;
	pthread_cond_broadcast(&ko->work);
	struct chunk *c;
	while ((c = queue_pop(ko))) { /* help with what is left */
		pthread_mutex_unlock(&ko->mu);
		open_chunk(ko, ko->caller, c);
		pthread_mutex_lock(&ko->mu);
	}
	pthread_mutex_unlock(&ko->mu);
	for (size_t i = 0; i < ko->nthreads; i++) {
		pthread_join(ko->openers[i].thread, NULL);
		kdc_master_free(&ko->openers[i].m);
	}
	int ret = KD3_OK;
	if (ko->failed && err)
		ret = kdc_master_open_failed(ko->caller, path, ko->failed_name, ko->failed_kvno,
		                             err, err_len);
	else if (ko->failed)
		ret = KD3_E_BLOB_AUTH;
	pthread_mutex_destroy(&ko->mu);
	pthread_cond_destroy(&ko->work);
	pthread_cond_destroy(&ko->room);
	free(ko);
	return ret;
}
