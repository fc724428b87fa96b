#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "net.h"

/* What of our environment the command gets (when set). */
static const char *const child_env_keep[] = {"PATH=", "HOME=", "LANG=", "TERM="};
#define ENV_KEEP  (sizeof(child_env_keep) / sizeof(child_env_keep[0]))
#define ENV_EXTRA 2 /* KD3_PEER, KD3_SESSION */

extern char **environ;

void resp_child_init(resp_child *c, void *owner)
{
	memset(c, 0, sizeof(*c));
	resp_watch_init(&c->in, RESP_W_CHILD_IN, owner);
	resp_watch_init(&c->out, RESP_W_CHILD_OUT, owner);
	resp_outq_init(&c->inq);
	resp_linebuf_init(&c->lines);
}

static const char *env_find(const char *prefix)
{
	size_t n = strlen(prefix);
	for (size_t i = 0; environ && environ[i]; i++)
		if (strncmp(environ[i], prefix, n) == 0)
			return environ[i];
	return NULL;
}

/* The minimal environment (child.h). The strings are not copied: the array lives
 * until execve (child) or free (parent). */
static char **child_env(char *peer_var, char *sid_var)
{
	char **env = calloc(ENV_KEEP + ENV_EXTRA + 1, sizeof(*env));
	size_t k = 0;

	if (!env)
		return NULL;
	for (size_t i = 0; i < ENV_KEEP; i++) {
		const char *v = env_find(child_env_keep[i]);
		if (v)
			env[k++] = (char *)v;
	}
	env[k++] = peer_var;
	env[k++] = sid_var;
	env[k] = NULL;
	return env;
}

/* In the child, between fork and execve: only async-signal-safe calls. The pipe
 * ends are first moved above 2, so dup2 cannot clobber one with the other when our
 * own 0 or 1 was closed. */
static void child_exec(const char *cmd, int in_r, int out_w, char **env)
{
	sigset_t none;
	static const char msg[] = "responder: cannot run /bin/sh\n";
	char *const argv[] = {"sh", "-c", (char *)cmd, NULL};

	/* Its own process group first, so that signalling the group reaches everything it
	 * starts (the parent does the same: whichever runs first). */
	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	int in_hi = fcntl(in_r, F_DUPFD_CLOEXEC, 3);
	int out_hi = fcntl(out_w, F_DUPFD_CLOEXEC, 3);
	if (in_hi < 0 || out_hi < 0 || dup2(in_hi, 0) < 0 || dup2(out_hi, 1) < 0)
		_exit(127);
	/* Also what we inherited without close-on-exec from whoever started us. */
	close_range(3, ~0u, 0);
	execve("/bin/sh", argv, env);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(127);
	_exit(127);
}

int resp_child_spawn(resp_child *c, const char *cmd, const char *peer, uint64_t sid, char *err,
                     size_t err_len)
{
	int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
	char peer_var[16 + 256], sid_var[32];
	char **env = NULL;
	int ret = KD3_E_IO;

	snprintf(peer_var, sizeof(peer_var), "KD3_PEER=%s", peer);
	snprintf(sid_var, sizeof(sid_var), "KD3_SESSION=%llu", (unsigned long long)sid);
	if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		goto out;
	}
	if (!(env = child_env(peer_var, sid_var))) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, err_len, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_exec(cmd, in_pipe[0], out_pipe[1], env);
	/* Fails with EACCES once the child has run execve: it did setpgid itself. */
	(void)setpgid(pid, pid);
	c->pid = pid;
	c->in.fd = in_pipe[1];
	c->out.fd = out_pipe[0];
	in_pipe[1] = out_pipe[0] = -1;
	kd3_set_nonblock(c->in.fd);
	kd3_set_nonblock(c->out.fd);
	ret = KD3_OK;
out:
	free(env);
	for (int i = 0; i < 2; i++) {
		if (in_pipe[i] >= 0)
			close(in_pipe[i]);
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
	}
	return ret;
}

void resp_child_kill_group(resp_child *c)
{
	if (c->pid <= 0 || c->group_signaled)
		return;
	c->group_signaled = 1;
	/* The group id is the child's pid, which the kernel does not give out again while
	 * the group has a member (the unreaped child counts). Once the group is empty the
	 * id is free: hence once, and soon after the child ended (at most the session's
	 * last seconds). */
	if (kill(-c->pid, SIGTERM) != 0 && !c->exited)
		kill(c->pid, SIGTERM); /* it has not reached its setpgid yet */
}

void resp_child_release(resp_child *c, int epfd, int kill_it)
{
	resp_watch_close(epfd, &c->in);
	resp_watch_close(epfd, &c->out);
	resp_outq_free(&c->inq);
	resp_linebuf_wipe(&c->lines);
	c->out_deadline = 0;
	if (kill_it)
		resp_child_kill_group(c);
}

void resp_child_describe(const resp_child *c, char *out, size_t len)
{
	if (!c->exited)
		snprintf(out, len, "still running");
	else if (WIFEXITED(c->status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(c->status));
	else if (WIFSIGNALED(c->status))
		snprintf(out, len, "killed by signal %d", WTERMSIG(c->status));
	else
		snprintf(out, len, "ended (status 0x%x)", (unsigned)c->status);
}
