/*
 * Private to the worker layer: what its files (process.c, tree.c, main.c)
 * share. The layers above see the worker through worker/kind.h.
 */
#ifndef FQ_WORKER_H
#define FQ_WORKER_H

#include <signal.h>

#include "worker/kind.h"

/* Exit statuses of a worker that ends on its own. */
#define FQ__EXIT_OK 0
#define FQ__EXIT_IO 120    /* channel failed */
#define FQ__EXIT_PROTO 121 /* parent sent garbage */
#define FQ__EXIT_INIT 122  /* init failed (after reporting it) */
#define FQ__EXIT_NOMEM 123

/* What the loop of a thread worker shares with the parent: the flag the
 * parent sets when it cancels or abandons the worker. */
typedef struct fq__thread_io {
    _Atomic int *cancel;
} fq__thread_io;

/* main.c: the worker loop. tio NULL (the process kind): never returns, the
 * worker ends with _exit(). Otherwise (the thread kind) returns the status
 * the worker ends with. */
int fq__worker_loop(fq_init_fn init, void *udata, fq__wstat *st, int fd,
                    const fq__thread_io *tio);
/* The same, for a worker of a kind with flags kflags (FQ__KIND_*): with
 * FQ__KIND_NO_PAGE, st is not used (the loop keeps a page of its own) and
 * every job started is reported with a STARTED frame. */
int fq__worker_loop_ex(fq_init_fn init, void *udata, fq__wstat *st, int fd,
                       const fq__thread_io *tio, unsigned kflags);
/* main.c, for tests: the version a worker's HELLO claims (0: ours). Set in
 * the parent before its workers start. */
extern unsigned fq__test_hello_version;
/* main.c, for tests: how often fq_ctx_cancelled() read the channel in this
 * process (the thread kind's workers share it). */
extern unsigned long fq__test_cancel_reads;
/* How often fq_ctx_cancelled() looks at the channel at most, and how many
 * cancelled jobs not yet started a worker remembers. */
#define FQ__CANCEL_CHECK_NS (2 * 1000 * 1000)
#define FQ__CANCEL_AHEAD 64u

/* recycle.c: after a job (that started at job_start_ns) and before
 * blocking for more work: measures the worker's memory when due and raises
 * st->over_rss once it passes st->max_rss. Return 1 when they just did
 * (flush the results, so that the parent wakes and retires the worker). */
int fq__rss_after_job(fq__wstat *st, int64_t job_start_ns);
int fq__rss_before_wait(fq__wstat *st);

/* tree.c: kills and reaps every process a worker's jobs started
 * (async-signal-safe). */
void fq__kill_descendants(void);
/* tree.c: ends a worker, its jobs' processes first. */
__attribute__((noreturn)) void fq__worker_exit(int status);
/* tree.c: the hygiene of a new worker, then the queue's child hook; runs
 * with every signal blocked and restores *oldmask. */
void fq__worker_child_setup(fq__wenv *q, int parent_end, int own_end,
                            pid_t parent, const sigset_t *oldmask);

/* tree.c: what makes a new process a worker that tracks its jobs'
 * processes (subreaper, the cleanup signal, death with parent). */
void fq__worker_tree_setup(pid_t parent);

/* The forked-process kind behind fq__process_ops (process.c). */
int fq__worker_spawn(fq__wenv *q, fq__worker **wp);
void fq__worker_free(fq__worker *w);
/* held_output of kinds with a shared page: what the worker committed to
 * its out[] but had not sent (process.c). */
size_t fq__page_held_output(fq__worker *w, const unsigned char **p);
/* Signals a worker's process group. SIGKILL asks the worker (on Linux) to
 * kill every process its jobs started and then itself; the loop follows
 * with fq__worker_kill_group() at hard_kill_at. */
void fq__worker_kill(fq__worker *w, int sig);
void fq__worker_kill_group(fq__worker *w);
/* fq_cancel()'s SIGTERM: on Linux the worker sends it to its group and to
 * the processes it adopted, and kills what is left after grace_ms. */
void fq__worker_terminate(fq__worker *w, int grace_ms);
/* Describes how a worker ended, for outcome messages. */
void fq__describe_exit(char *buf, size_t n, pid_t pid, int signo,
                       int exit_status);

#endif
