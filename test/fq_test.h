/*
 * Helpers shared by the C tests of forkqueue.
 *
 * Rules these helpers follow (see /work/shared/TOOLING.md): nothing here
 * asserts inside a forked process, and every wait is a poll for a condition
 * with a deadline, never a fixed sleep.
 */
#ifndef FQ_TEST_H
#define FQ_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "fq_proc.h"

/* Sanitizer builds run slower and use more memory per allocation; some
 * tests scale down (never below what still exercises the behaviour). */
#if defined(FQ_TEST_SANITIZE)
#define FQT_SANITIZE 1
#else
#define FQT_SANITIZE 0
#endif

/* Asserts that an fq_* call returned `want`, printing both names if not. */
#define FQT_EQ(call, want)                                                     \
    do {                                                                       \
        int fqt_rc_ = (call);                                                  \
        int fqt_want_ = (want);                                                \
        if (fqt_rc_ != fqt_want_)                                              \
            print_error("%s returned %d (%s), want %d (%s)\n", #call, fqt_rc_, \
                        fq_err_name(fqt_rc_), fqt_want_,                       \
                        fq_err_name(fqt_want_));                               \
        assert_int_equal(fqt_rc_, fqt_want_);                                  \
    } while (0)

#define FQT_OK(call) FQT_EQ(call, 0)

/*
 * Queues made by the helpers below are remembered, so that the teardown of
 * a failed test frees them: otherwise its workers would outlive it and make
 * the next tests' child-process checks fail too.
 */
#define FQT_MAX_QUEUES 64
static fq_queue fqt_queues[FQT_MAX_QUEUES];
static int fqt_nqueues;

static inline fq_queue fqt_queue_opts(const fq_options *o)
{
    fq_queue q = {0};
    FQT_OK(fq_queue_new(&q, o));
    assert_int_not_equal(q.id, 0);
    if (fqt_nqueues < FQT_MAX_QUEUES)
        fqt_queues[fqt_nqueues++] = q;
    return q;
}

/* A queue with the given worker count and ordering; other options default. */
static inline fq_queue fqt_queue(int workers, int ordered)
{
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = workers;
    o.ordered = ordered;
    return fqt_queue_opts(&o);
}

/* Frees a queue made by the helpers above (it must succeed), and forgets
 * it: the teardown does not free it again. */
static inline void fqt_queue_free(fq_queue q)
{
    FQT_OK(fq_queue_free(q));
    for (int i = 0; i < fqt_nqueues; i++)
        if (fqt_queues[i].id == q.id)
            fqt_queues[i--] = fqt_queues[--fqt_nqueues];
}

/* Frees what a test left behind (nothing, when it passed). */
static inline int fqt_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < fqt_nqueues; i++)
        (void)fq_queue_free(fqt_queues[i]); /* FQ_ECLOSED when freed */
    fqt_nqueues = 0;
    return 0;
}

#define FQT_TEST(f) cmocka_unit_test_teardown(f, fqt_teardown)

/* Runs the group; FQT_FILTER=pattern runs only the matching tests (for
 * debugging one case), FQT_SKIP=pattern leaves the matching ones out (the
 * valgrind runs skip cases that would take minutes there). */
#define FQT_RUN(tests)                                                         \
    (getenv("FQT_FILTER") ? cmocka_set_test_filter(getenv("FQT_FILTER"))       \
                          : (void)0,                                           \
     getenv("FQT_SKIP") ? cmocka_set_skip_filter(getenv("FQT_SKIP"))           \
                        : (void)0,                                             \
     cmocka_run_group_tests(tests, NULL, NULL))

/* A pipe whose ends are close-on-exec (forked workers still inherit them:
 * fork keeps every descriptor). */
static inline void fqt_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
}

static inline void fqt_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Writes all of buf; for use in workers too (no assert). */
static inline int fqt_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Blocking read of exactly len bytes; for use in workers (no assert).
 * Returns 0, or -1 on EOF or error. */
static inline int fqt_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Reads exactly len bytes from fd, driving q (if q.id != 0) meanwhile so
 * that jobs get sent, until deadline_ms from now. Returns 0, or -1 on
 * timeout/EOF. Used to wait for a job to signal that it has started.
 */
static inline int fqt_read_driving(fq_queue q, int fd, void *buf, size_t len,
                                   int deadline_ms)
{
    char *p = buf;
    int64_t end = fqp_now_ms() + deadline_ms;
    while (len > 0) {
        int64_t left = end - fqp_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, q.id ? 0 : (int)left);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0) {
            ssize_t r = read(fd, p, len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return -1;
            p += r;
            len -= (size_t)r;
            continue;
        }
        if (q.id) {
            /* fq_poll returns at once when an outcome is ready; the job
             * under watch may be blocked while others finish. */
            int rc = fq_poll(q, 10);
            if (rc > 0) {
                pfd.revents = 0;
                if (poll(&pfd, 1, 10) < 0 && errno != EINTR)
                    return -1;
            }
        }
    }
    return 0;
}

/* Takes one outcome, waiting up to timeout_ms. Returns 1, 0 on timeout. */
static inline int fqt_take_wait(fq_queue q, fq_result *r, int timeout_ms)
{
    int64_t end = fqp_now_ms() + timeout_ms;
    for (;;) {
        int rc = fq_take(q, r);
        if (rc != 0)
            return rc;
        int64_t left = end - fqp_now_ms();
        if (left <= 0)
            return 0;
        rc = fq_poll(q, (int)left);
        if (rc < 0)
            return rc;
    }
}

/* One step of a polling loop: sleeps a short interval and returns 1, or
 * returns 0 once the deadline (fqp_now_ms() time) has passed. */
static inline int fqt_poll_step(int64_t end_ms)
{
    if (fqp_now_ms() >= end_ms)
        return 0;
    fqp_sleep_ms(2);
    return 1;
}

/* Waits until cond holds, testing it every 2 ms, at most deadline_ms
 * (times FQT_TIME_SCALE: the valgrind copies run slower). A
 * statement: assert the condition after it (with its values in the
 * message), e.g. FQT_WAIT_UNTIL(n_workers() == 0, 5000);
 * assert_int_equal(n_workers(), 0); */
#define FQT_WAIT_UNTIL(cond, deadline_ms)                                      \
    do {                                                                       \
        int64_t fqt_end_ =                                                     \
            fqp_now_ms() + fqp_time_scale() * (int64_t)(deadline_ms);          \
        while (!(cond) && fqt_poll_step(fqt_end_)) {                           \
        }                                                                      \
    } while (0)

/* True while the process with this pid and start time runs (a zombie, or
 * another process that reused the pid, counts as gone). start 0: any. */
static inline int fqt_proc_alive(pid_t pid, unsigned long long start)
{
    char st;
    unsigned long long t;
    if (fqp_proc_stat(pid, &st, NULL, &t) != 0)
        return 0;
    if (st == 'Z' || st == 'X')
        return 0;
    if (start && t != start)
        return 0;
    return 1;
}

static inline unsigned long long fqt_proc_start(pid_t pid)
{
    unsigned long long t = 0;
    if (fqp_proc_stat(pid, NULL, NULL, &t) != 0)
        return 0;
    return t;
}

/* Polls until the process is gone; returns 1 if it went within
 * deadline_ms. */
static inline int fqt_wait_gone(pid_t pid, unsigned long long start,
                                int deadline_ms)
{
    FQT_WAIT_UNTIL(!fqt_proc_alive(pid, start), deadline_ms);
    return !fqt_proc_alive(pid, start);
}

/* The kernel's id of the calling thread. */
static inline pid_t fqt_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Is thread tid of this process blocked (state S)? Safe in any thread (no
 * assert). */
static inline int fqt_thread_sleeping(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

/* From another thread: until thread tid blocks (in the wait under test), at
 * most 10 s; returns whether it did. */
static inline int fqt_await_sleeping(pid_t tid)
{
    int64_t end = fqp_now_ms() + 10000;
    while (fqp_now_ms() < end) {
        if (fqt_thread_sleeping(tid))
            return 1;
        sched_yield();
    }
    return 0;
}

/* Counts the processes whose parent is this process; zombies counts those
 * in state Z. Reads /proc only, so it reaps nothing. */
static inline int fqt_count_children(int *zombies)
{
    return fqp_children(getpid(), NULL, 0, zombies);
}

/* Waits for a forked helper process and returns its exit status, or
 * 1000 + signal number when a signal killed it, -1 when it is no child. */
static inline int fqt_wait_child(pid_t pid)
{
    int st = fqp_reap(pid);
    if (st == -1)
        return -1;
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* ---- Memory shared with workers, counters of runs ---------------------- */

/* Zeroed shared memory (fqp_shared_new()), made before the queue or the
 * fork server whose workers write to it. */
static inline void *fqt_shared_new(size_t size)
{
    void *p = fqp_shared_new(size);
    assert_non_null(p);
    return p;
}

#define fqt_shared_free fqp_shared_free

/* Counters of how often each of n jobs ran: a job adds 1 to its own, the
 * test checks that every job ran exactly once. */
static inline _Atomic unsigned *fqt_runs_new(int n)
{
    return fqt_shared_new((size_t)n * sizeof(_Atomic unsigned));
}

static inline void fqt_runs_free(_Atomic unsigned *runs, int n)
{
    fqp_shared_free((void *)runs, (size_t)n * sizeof(_Atomic unsigned));
}

static inline void fqt_assert_ran_once(_Atomic unsigned *runs, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned v = atomic_load(&runs[i]);
        if (v != 1)
            print_error("job %d ran %u times\n", i, v);
        assert_int_equal(v, 1);
    }
}

/* ---- Temporary directories (key files, certificates) ------------------- */

/* Makes a fresh directory from a mkdtemp() template such as
 * "/tmp/fq-test-XXXXXX" (changed in place); 0, or -1 with errno. */
static inline int fqt_tmpdir_new(char *tmpl)
{
    return mkdtemp(tmpl) ? 0 : -1;
}

/* Removes such a directory with all it holds; 0 or -1. */
static inline int fqt_tmpdir_remove(const char *dir)
{
    char cmd[PATH_MAX + 16];
    if (strchr(dir, '\'') ||
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir) >= (int)sizeof cmd)
        return -1;
    return system(cmd) == 0 ? 0 : -1;
}

/* Cheap deterministic pattern: byte i of a stream seeded with seed. */
static inline uint64_t fqt_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static inline void fqt_fill(void *buf, size_t len, uint64_t seed)
{
    unsigned char *p = buf;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = fqt_mix(seed + i);
        memcpy(p + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = fqt_mix(seed + i);
        memcpy(p + i, &v, len - i);
    }
}

/* Returns the offset of the first byte that differs from the pattern, or
 * len when all match. */
static inline size_t fqt_check(const void *buf, size_t len, uint64_t seed)
{
    const unsigned char *p = buf;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = fqt_mix(seed + i);
        if (memcmp(p + i, &v, 8) != 0)
            return i;
    }
    if (i < len) {
        uint64_t v = fqt_mix(seed + i);
        if (memcmp(p + i, &v, len - i) != 0)
            return i;
    }
    return len;
}

/* Checks the description every error outcome carries. */
static inline void fqt_assert_msg(const fq_result *r)
{
    assert_non_null(r->data);
    assert_int_equal(((const char *)r->data)[r->len], '\0');
    assert_int_equal(strlen((const char *)r->data), r->len);
}

/* ---- Jobs and gates shared by several tests --------------------------- */

/* Replies with its argument. */
static inline int fqt_job_echo(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len) == 0 ? 0 : 100;
}

static inline uint64_t fqt_square(uint64_t x)
{
    return x * x + 1;
}

/* Argument: a uint64_t x. Result: fqt_square(x). */
static inline int fqt_job_square(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t x;
    if (len != sizeof x)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&x, arg, sizeof x);
    x = fqt_square(x);
    return fq_reply(ctx, &x, sizeof x) == 0 ? 0 : 100;
}

/* Result: the pid of the worker. */
static inline int fqt_job_pid(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    pid_t p = getpid();
    return fq_reply(ctx, &p, sizeof p) == 0 ? 0 : 100;
}

/*
 * A gate lets a test hold jobs in a worker and know when they run: a gated
 * job writes its pid to `started`, then blocks until the test writes a byte
 * to `open`. Create the gate before the queue (or before fq_refork()), so
 * that workers inherit it.
 */
typedef struct fqt_gate {
    int started[2];
    int open[2];
} fqt_gate;

typedef struct fqt_gate_arg {
    int started_wr;
    int open_rd;
    uint64_t value;
    int ignore_term; /* 1: the job ignores SIGTERM before blocking; 2: it
                        blocks every signal it can */
} fqt_gate_arg;

static inline void fqt_gate_new(fqt_gate *g)
{
    fqt_pipe(g->started);
    fqt_pipe(g->open);
}

static inline void fqt_gate_free(fqt_gate *g)
{
    for (int i = 0; i < 2; i++) {
        fqt_close(&g->started[i]);
        fqt_close(&g->open[i]);
    }
}

static inline fqt_gate_arg fqt_gate_arg_of(const fqt_gate *g, uint64_t value)
{
    fqt_gate_arg a;
    memset(&a, 0, sizeof a);
    a.started_wr = g->started[1];
    a.open_rd = g->open[0];
    a.value = value;
    return a;
}

/* Result: the argument's value (uint64_t), once the gate opens. */
static inline int fqt_job_gate(fq_ctx *ctx, const void *arg, size_t len)
{
    fqt_gate_arg a;
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&a, arg, sizeof a);
    if (a.ignore_term == 2) {
        sigset_t all; /* every signal the job can block */
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
    } else if (a.ignore_term) {
        signal(SIGTERM, SIG_IGN);
    }
    pid_t p = getpid();
    if (fqt_write_all(a.started_wr, &p, sizeof p) != 0)
        return fq_fail(ctx, 98, "cannot signal start");
    char c;
    if (fqt_read_all(a.open_rd, &c, 1) != 0)
        return fq_fail(ctx, 97, "gate closed");
    return fq_reply(ctx, &a.value, sizeof a.value) == 0 ? 0 : 100;
}

/* Waits (driving q) until a gated job has started; returns its pid. */
static inline pid_t fqt_gate_started(fq_queue q, fqt_gate *g)
{
    pid_t p = 0;
    int rc = fqt_read_driving(q, g->started[0], &p, sizeof p, 20000);
    assert_int_equal(rc, 0);
    assert_true(p > 0);
    return p;
}

static inline void fqt_gate_open(fqt_gate *g, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(fqt_write_all(g->open[1], "x", 1), 0);
}

static inline uint64_t fqt_submit_gate(fq_queue q, const fqt_gate *g,
                                       uint64_t value, int ignore_term)
{
    fqt_gate_arg a = fqt_gate_arg_of(g, value);
    a.ignore_term = ignore_term;
    uint64_t id = UINT64_MAX;
    FQT_OK(fq_submit(q, fqt_job_gate, &a, sizeof a, NULL, &id));
    return id;
}

static inline uint64_t fqt_submit_square(fq_queue q, uint64_t x)
{
    uint64_t id = UINT64_MAX;
    FQT_OK(fq_submit(q, fqt_job_square, &x, sizeof x, NULL, &id));
    return id;
}

/* Submits n gated jobs (value 5) with a time limit of limit_ms each, the
 * gate closed: asserts that each ends FQ_ETIMEDOUT, all within 5 s. */
static inline void fqt_assert_gated_timeouts(fq_queue q, const fqt_gate *g,
                                             int n, int limit_ms)
{
    fq_job_options jo = {0};
    jo.timeout_ms = limit_ms;
    fqt_gate_arg ga = fqt_gate_arg_of(g, 5);
    for (int i = 0; i < n; i++)
        FQT_OK(fq_submit(q, fqt_job_gate, &ga, sizeof(ga), &jo, NULL));
    int64_t t0 = fqp_now_ms();
    fq_result r;
    for (int i = 0; i < n; i++) {
        assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
        assert_int_equal(r.status, FQ_ETIMEDOUT);
    }
    assert_true(fqp_now_ms() - t0 < 5000);
}

/* Reads the uint64_t result of a successful outcome. */
static inline uint64_t fqt_u64(const fq_result *r)
{
    if (r->status != 0)
        print_error("job %" PRIu64 ": status %s code %d: %s\n", r->id,
                    fq_err_name(r->status), r->code,
                    r->data ? (const char *)r->data : "(null)");
    assert_int_equal(r->status, 0);
    assert_int_equal(r->len, sizeof(uint64_t));
    uint64_t v;
    memcpy(&v, r->data, sizeof v);
    return v;
}

/* Asserts that no child process of ours is left, zombie or alive. */
static inline void fqt_assert_no_children(void)
{
    int z = -1;
    int n = fqt_count_children(&z);
    if (n != 0)
        print_error("%d child processes left (%d zombies)\n", n, z);
    assert_int_equal(n, 0);
}

#endif
