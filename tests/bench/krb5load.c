/* krb5load: the MIT Kerberos reference for kdcload (--with-krb5 in run.sh). The same
 * closed-loop shape: N threads, each with one request outstanding, bounded in count
 * and time, against a krb5kdc on 127.0.0.1 whose krb5.conf (KRB5_CONFIG) names it by
 * IP literal and port.
 *
 *   as:  krb5_get_init_creds_keytab for the thread's principal (keys from its keytab,
 *        copied into a MEMORY keytab so the file is read once): one AS exchange.
 *   tgs: a TGT got once per thread sits in a MEMORY ccache; each request is
 *        krb5_get_credentials with KRB5_GC_NO_STORE, so the service ticket is never
 *        cached and every call is one TGS exchange.
 * libkrb5 checks every reply (it decrypts it with the client key or the TGT session
 * key), so a wrong answer is an error, never speed. Prints one JSON object like
 * kdcload's, with the KDC's CPU per request from /proc/PID/stat. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <krb5/krb5.h>

#include "bench_util.h"

#define THREADS_MAX       256
#define WARMUP_PER_THREAD 20

enum kind { K_AS, K_TGS };

typedef struct shared {
	enum kind kind;
	const char *realm;
	const char *service; /* TGS: the service principal asked for */
	const char *keytab_dir;
	const char *client_prefix; /* principals PREFIX1..PREFIXn, keytabs DIR/PREFIXi.keytab */
	long requests;
	double seconds;
	atomic_long issued;
	pthread_barrier_t warm, go;
	uint64_t deadline_ns;
} shared;

typedef struct worker {
	shared *sh;
	int index;
	pthread_t tid;
	b_lat lat;
	long ok, failed;
	char first_error[256];
	krb5_context ctx;
	krb5_principal client, server;
	krb5_keytab kt;
	krb5_get_init_creds_opt *opt;
	krb5_ccache cc;
} worker;

static void note_error(worker *w, krb5_error_code code, const char *what)
{
	w->failed++;
	if (w->first_error[0])
		return;
	const char *msg = krb5_get_error_message(w->ctx, code);
	snprintf(w->first_error, sizeof(w->first_error), "%s: %s", what, msg);
	krb5_free_error_message(w->ctx, msg);
}

/* The keytab file's entries into a MEMORY keytab, read once. */
static krb5_error_code keytab_to_memory(worker *w, const char *path)
{
	char file_name[4200], mem_name[64];
	krb5_keytab file_kt;
	krb5_kt_cursor cur;
	krb5_keytab_entry entry;
	krb5_error_code ret;

	snprintf(file_name, sizeof(file_name), "FILE:%s", path);
	snprintf(mem_name, sizeof(mem_name), "MEMORY:krb5load%d", w->index);
	if ((ret = krb5_kt_resolve(w->ctx, file_name, &file_kt)) ||
	    (ret = krb5_kt_resolve(w->ctx, mem_name, &w->kt)))
		return ret;
	if ((ret = krb5_kt_start_seq_get(w->ctx, file_kt, &cur)) == 0) {
		while (krb5_kt_next_entry(w->ctx, file_kt, &entry, &cur) == 0) {
			ret = krb5_kt_add_entry(w->ctx, w->kt, &entry);
			krb5_free_keytab_entry_contents(w->ctx, &entry);
			if (ret)
				break;
		}
		krb5_kt_end_seq_get(w->ctx, file_kt, &cur);
	}
	krb5_kt_close(w->ctx, file_kt);
	return ret;
}

static krb5_error_code as_once(worker *w, krb5_creds *creds)
{
	return krb5_get_init_creds_keytab(w->ctx, creds, w->client, w->kt, 0, NULL, w->opt);
}

static krb5_error_code worker_setup(worker *w)
{
	char name[512], path[4096];
	krb5_error_code ret;
	shared *sh = w->sh;

	if ((ret = krb5_init_context(&w->ctx)))
		return ret;
	snprintf(name, sizeof(name), "%s%d@%s", sh->client_prefix, w->index + 1, sh->realm);
	snprintf(path, sizeof(path), "%s/%s%d.keytab", sh->keytab_dir, sh->client_prefix,
	         w->index + 1);
	if ((ret = krb5_parse_name(w->ctx, name, &w->client)) ||
	    (ret = keytab_to_memory(w, path)) ||
	    (ret = krb5_get_init_creds_opt_alloc(w->ctx, &w->opt)))
		return ret;
	if (sh->kind == K_AS)
		return 0;
	snprintf(name, sizeof(name), "%s@%s", sh->service, sh->realm);
	krb5_creds tgt;
	memset(&tgt, 0, sizeof(tgt));
	if ((ret = krb5_parse_name(w->ctx, name, &w->server)) ||
	    (ret = krb5_cc_new_unique(w->ctx, "MEMORY", NULL, &w->cc)) ||
	    (ret = krb5_cc_initialize(w->ctx, w->cc, w->client)) || (ret = as_once(w, &tgt)))
		return ret;
	ret = krb5_cc_store_cred(w->ctx, w->cc, &tgt);
	krb5_free_cred_contents(w->ctx, &tgt);
	return ret;
}

static krb5_error_code tgs_once(worker *w)
{
	krb5_creds in, *out = NULL;
	memset(&in, 0, sizeof(in));
	in.client = w->client;
	in.server = w->server;
	krb5_error_code ret = krb5_get_credentials(w->ctx, KRB5_GC_NO_STORE, w->cc, &in, &out);
	if (ret == 0 && !krb5_principal_compare(w->ctx, out->server, w->server))
		ret = KRB5KRB_AP_ERR_BADMATCH; /* a ticket for another service */
	if (out)
		krb5_free_creds(w->ctx, out);
	return ret;
}

static krb5_error_code request_once(worker *w)
{
	if (w->sh->kind == K_TGS)
		return tgs_once(w);
	krb5_creds creds;
	memset(&creds, 0, sizeof(creds));
	krb5_error_code ret = as_once(w, &creds);
	if (ret == 0)
		krb5_free_cred_contents(w->ctx, &creds);
	return ret;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	shared *sh = w->sh;
	krb5_error_code ret = worker_setup(w);
	if (ret)
		note_error(w, ret, "setup");
	for (int k = 0; k < WARMUP_PER_THREAD && !ret; k++)
		if ((ret = request_once(w)))
			note_error(w, ret, "warm-up");
	pthread_barrier_wait(&sh->warm);
	pthread_barrier_wait(&sh->go); /* the main thread has read the KDC's CPU time */
	while (!ret) {
		if (atomic_fetch_add(&sh->issued, 1) >= sh->requests)
			break;
		uint64_t t0 = b_now_ns();
		if (t0 >= sh->deadline_ns)
			break;
		ret = request_once(w);
		if (ret) {
			note_error(w, ret, sh->kind == K_AS ? "AS request" : "TGS request");
			break; /* a failing exchange ends the thread: no error loop */
		}
		b_lat_add(&w->lat, b_now_ns() - t0);
		w->ok++;
	}
	return NULL;
}

static void worker_free(worker *w)
{
	if (!w->ctx)
		return;
	if (w->cc)
		krb5_cc_destroy(w->ctx, w->cc);
	if (w->opt)
		krb5_get_init_creds_opt_free(w->ctx, w->opt);
	if (w->kt)
		krb5_kt_close(w->ctx, w->kt);
	krb5_free_principal(w->ctx, w->client);
	krb5_free_principal(w->ctx, w->server);
	krb5_free_context(w->ctx);
}

static void usage(void)
{
	fputs("usage: krb5load --realm=R --keytabs=DIR --kind=as|tgs [options]\n"
	      "  (KRB5_CONFIG must name the KDC as 127.0.0.1:PORT)\n"
	      "  --clients=PREFIX   principals PREFIX1.., keytabs DIR/PREFIXi.keytab (user)\n"
	      "  --service=NAME     TGS: the service principal (svc)\n"
	      "  --outstanding=N    threads, one request in flight each (1)\n"
	      "  --requests=N       measured requests at most (50000)\n"
	      "  --seconds=S        measured time at most (3)\n"
	      "  --kdc-pid=PID      the krb5kdc process, for CPU per request\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"realm", required_argument, 0, 'r'},
	                                     {"keytabs", required_argument, 0, 'd'},
	                                     {"kind", required_argument, 0, 'k'},
	                                     {"clients", required_argument, 0, 'c'},
	                                     {"service", required_argument, 0, 'S'},
	                                     {"outstanding", required_argument, 0, 'o'},
	                                     {"requests", required_argument, 0, 'n'},
	                                     {"seconds", required_argument, 0, 's'},
	                                     {"kdc-pid", required_argument, 0, 'P'},
	                                     {"help", no_argument, 0, 'h'},
	                                     {0, 0, 0, 0}};
	shared sh;
	long nthreads = 1, kdc_pid = 0;
	int ch, kind_set = 0;

	memset(&sh, 0, sizeof(sh));
	sh.client_prefix = "user";
	sh.service = "svc";
	sh.requests = 50000;
	sh.seconds = 3.0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			sh.realm = optarg;
			break;
		case 'd':
			sh.keytab_dir = optarg;
			break;
		case 'k':
			kind_set = 1;
			if (strcmp(optarg, "as") == 0)
				sh.kind = K_AS;
			else if (strcmp(optarg, "tgs") == 0)
				sh.kind = K_TGS;
			else
				b_die(2, "--kind: '%s' is not as or tgs", optarg);
			break;
		case 'c':
			sh.client_prefix = optarg;
			break;
		case 'S':
			sh.service = optarg;
			break;
		case 'o':
			nthreads = b_arg_long("--outstanding", optarg, 1, THREADS_MAX);
			break;
		case 'n':
			sh.requests = b_arg_long("--requests", optarg, 1, 5000000);
			break;
		case 's':
			sh.seconds = b_arg_double("--seconds", optarg, 0.05, 600);
			break;
		case 'P':
			kdc_pid = b_arg_long("--kdc-pid", optarg, 1, 1 << 30);
			break;
		default:
			usage();
		}
	}
	if (!sh.realm || !sh.keytab_dir || !kind_set || optind != argc)
		usage();
	if (!getenv("KRB5_CONFIG"))
		b_die(2, "KRB5_CONFIG is not set: it must name a krb5.conf for the loopback realm");

	worker *ws = calloc((size_t)nthreads, sizeof(*ws));
	if (!ws)
		b_die(1, "out of memory");
	pthread_barrier_init(&sh.warm, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&sh.go, NULL, (unsigned)nthreads + 1);
	for (long t = 0; t < nthreads; t++) {
		ws[t].sh = &sh;
		ws[t].index = (int)t;
		if (b_lat_init(&ws[t].lat, (size_t)sh.requests) != 0)
			b_die(1, "out of memory");
		if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0)
			b_die(1, "cannot start thread %ld", t);
	}
	pthread_barrier_wait(&sh.warm);
	int64_t kdc_cpu0 = kdc_pid ? b_proc_cpu_us((pid_t)kdc_pid) : -1;
	int64_t self_cpu0 = b_self_cpu_us();
	uint64_t t0 = b_now_ns();
	sh.deadline_ns = t0 + (uint64_t)(sh.seconds * 1e9);
	pthread_barrier_wait(&sh.go);
	for (long t = 0; t < nthreads; t++)
		pthread_join(ws[t].tid, NULL);
	uint64_t t1 = b_now_ns();
	int64_t kdc_cpu1 = kdc_pid ? b_proc_cpu_us((pid_t)kdc_pid) : -1;
	int64_t self_cpu1 = b_self_cpu_us();

	b_lat all;
	long ok = 0, failed = 0;
	const char *first_error = "";
	if (b_lat_init(&all, (size_t)sh.requests) != 0)
		b_die(1, "out of memory");
	for (long t = 0; t < nthreads; t++) {
		ok += ws[t].ok;
		failed += ws[t].failed;
		if (!first_error[0] && ws[t].first_error[0])
			first_error = ws[t].first_error;
		for (size_t k = 0; k < ws[t].lat.n; k++)
			b_lat_add(&all, ws[t].lat.ns[k]);
	}
	double elapsed = (double)(t1 - t0) / 1e9;
	b_lat_sort(&all);
	b_json_begin();
	b_json_str("tool", "krb5load");
	b_json_str("kind", sh.kind == K_AS ? "as" : "tgs");
	b_json_int("outstanding", nthreads);
	b_json_int("answered", ok);
	b_json_int("bad", failed);
	b_json_num("seconds", elapsed);
	b_json_num("rps", elapsed > 0 ? (double)ok / elapsed : 0);
	b_json_num("p50_us", b_lat_pct_us(&all, 0.50));
	b_json_num("p99_us", b_lat_pct_us(&all, 0.99));
	b_json_num("p999_us", b_lat_pct_us(&all, 0.999));
	if (kdc_cpu0 >= 0 && kdc_cpu1 >= 0 && ok)
		b_json_num("server_cpu_us_per_req", (double)(kdc_cpu1 - kdc_cpu0) / (double)ok);
	if (ok)
		b_json_num("client_cpu_us_per_req", (double)(self_cpu1 - self_cpu0) / (double)ok);
	b_json_end();
	if (failed)
		fprintf(stderr, "krb5load: %ld requests failed (first: %s)\n", failed, first_error);
	for (long t = 0; t < nthreads; t++) {
		worker_free(&ws[t]);
		b_lat_free(&ws[t].lat);
	}
	b_lat_free(&all);
	free(ws);
	return failed || ok == 0 ? 1 : 0;
}
