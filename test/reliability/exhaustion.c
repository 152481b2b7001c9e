/*
 * Resource exhaustion: fork failing (RLIMIT_NPROC), descriptors running out
 * (RLIMIT_NOFILE), a worker that allocates until its memory limit stops it,
 * and results larger than the parent can or may buffer.
 *
 * Each case must end with a clear error for the affected job or call, never
 * a crash or a hang, and the queue must recover once the resource is back.
 * Every scenario runs in a forked process of its own (limits and user ids
 * must not leak into other tests), bounded by a deadline; it reports
 * failures on stderr and through its exit status, and the cmocka test
 * asserts on that status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "    check failed (line %d): %s\n", __LINE__, #c); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

#define CHECK_RC(call, want)                                                   \
    do {                                                                       \
        int rc_ = (call), want_ = (want);                                      \
        if (rc_ != want_) {                                                    \
            fprintf(stderr, "    line %d: %s returned %s, want %s\n",          \
                    __LINE__, #call, fq_err_name(rc_), fq_err_name(want_));    \
            return 1;                                                          \
        }                                                                      \
    } while (0)

/* ---- Jobs -------------------------------------------------------------- */

static int square_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int v;
    if (len != sizeof v)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&v, arg, sizeof v);
    v *= v;
    return fq_reply(ctx, &v, sizeof v);
}

static int die_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    raise(SIGKILL);
    return 0;
}

/* Virtual memory size of this process, from /proc/self/statm. */
static size_t vm_bytes(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static int limit_as(size_t extra)
{
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = vm_bytes() + extra;
    return setrlimit(RLIMIT_AS, &rl);
}

/* Allocates and touches memory until malloc fails, then does what most C
 * programs do on allocation failure. */
static int hog_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    if (limit_as(64u << 20) != 0)
        return fq_fail(ctx, 1, "setrlimit failed");
    for (size_t total = 0;; total += 1u << 20) {
        char *p = malloc(1u << 20);
        if (!p)
            abort();
        memset(p, 0x5a, 1u << 20);
        if (total > ((size_t)8 << 30))
            return fq_fail(ctx, 2, "the memory limit did not stop the job");
    }
}

/* Replies with `*arg` zero bytes, straight from a mapping that costs no
 * memory (untouched anonymous pages read as zero). */
static int big_reply_job(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t n;
    if (len != sizeof n)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&n, arg, sizeof n);
    void *p = mmap(NULL, (size_t)n, PROT_READ,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return fq_fail(ctx, 2, "mmap failed");
    return fq_reply(ctx, p, (size_t)n);
}

/* ---- Helpers for scenarios --------------------------------------------- */

struct tally {
    int n;
    int status[8]; /* 0, ECRASHED, EFORK, ETOOBIG, ENOMEM, other */
    int wrong;     /* results with a wrong value */
    int signo;     /* of the last FQ_ECRASHED */
    char last_err[200];
};

static int status_slot(int st)
{
    switch (st) {
    case 0:
        return 0;
    case FQ_ECRASHED:
        return 1;
    case FQ_EFORK:
        return 2;
    case FQ_ETOOBIG:
        return 3;
    case FQ_ENOMEM:
        return 4;
    default:
        return 5;
    }
}

static uint64_t next_id = 1;

/* Submits n jobs (square_job of id % 1000, or fn), waits for
 * all with a deadline and tallies the outcomes. Returns 0, or -1 if the wait
 * failed (a hang shows up here as FQ_ETIMEDOUT). */
static int run_jobs(fq_queue q, fq_job_fn fn, const void *arg, size_t alen,
                    int n, int timeout_ms, struct tally *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++) {
        fq_job_options jo = {0};
        jo.id = next_id++;
        jo.flags = FQ_JOB_ID;
        int v = (int)(jo.id % 1000);
        int rc = fn ? fq_submit(q, fn, arg, alen, &jo, NULL)
                    : fq_submit(q, square_job, &v, sizeof v, &jo, NULL);
        if (rc != 0) {
            fprintf(stderr, "    fq_submit: %s\n", fq_err_name(rc));
            return -1;
        }
    }
    int rc = fq_wait(q, timeout_ms);
    if (rc != 0) {
        fprintf(stderr, "    fq_wait: %s\n", fq_err_name(rc));
        return -1;
    }
    fq_result r;
    while (fq_take(q, &r) == 1) {
        t->n++;
        t->status[status_slot(r.status)]++;
        if (r.status != 0) {
            snprintf(t->last_err, sizeof t->last_err, "%s: %s",
                     fq_err_name(r.status), (const char *)r.data);
            if (r.status == FQ_ECRASHED)
                t->signo = r.signo;
        } else if (!fn) {
            int v;
            if (r.len != sizeof v)
                t->wrong++;
            else if (memcpy(&v, r.data, sizeof v),
                     v != (int)(r.id % 1000) * (int)(r.id % 1000))
                t->wrong++;
        }
    }
    return 0;
}

static fq_queue new_queue(int workers, uint64_t max_result)
{
    fq_options o = {0};
    o.workers = workers;
    o.max_result_bytes = max_result;
    fq_queue q = {0};
    int rc = fq_queue_new(&q, &o);
    if (rc != 0)
        fprintf(stderr, "    fq_queue_new: %s\n", fq_err_name(rc));
    return q;
}

/* Runs a queue from scratch and checks a few results (recovery). */
static int queue_works(fq_queue q)
{
    struct tally t;
    CHECK(run_jobs(q, NULL, NULL, 0, 20, 30000, &t) == 0);
    CHECK(t.n == 20 && t.status[0] == 20 && t.wrong == 0);
    return 0;
}

static int children_now(void)
{
    return fqp_children(getpid(), NULL, 0, NULL);
}

/* RLIMIT_NPROC does not bind root: run as an unprivileged user. */
static int drop_root(void)
{
    if (geteuid() != 0)
        return 0;
    if (setgid(65534) != 0 || setuid(65534) != 0) {
        fprintf(stderr, "    cannot switch to uid 65534: %s\n",
                strerror(errno));
        return -1;
    }
    return 0;
}

static int set_soft_limit(int res, rlim_t v)
{
    struct rlimit rl;
    getrlimit(res, &rl);
    rl.rlim_cur = v < rl.rlim_max ? v : rl.rlim_max;
    return setrlimit(res, &rl);
}

static rlim_t soft_limit(int res)
{
    struct rlimit rl;
    getrlimit(res, &rl);
    return rl.rlim_cur;
}

/* The k-th lowest unused descriptor number (k >= 1). New descriptors take
 * the lowest free number, and RLIMIT_NOFILE bounds that number: a limit of
 * nth_free_fd(k + 1) lets exactly k more descriptors be opened. */
static int nth_free_fd(int k)
{
    for (int fd = 0;; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && --k == 0)
            return fd;
}

/* ---- Scenarios (each runs in its own process) -------------------------- */

static int scn_nproc_new(void)
{
    CHECK(drop_root() == 0);
    rlim_t saved = soft_limit(RLIMIT_NPROC);
    int fds = rel_count_fds();
    CHECK(set_soft_limit(RLIMIT_NPROC, 1) == 0);

    fq_queue q = {12345};
    fq_options o = {0};
    o.workers = 3;
    int rc = fq_queue_new(&q, &o);
    fprintf(stderr, "    fq_queue_new without fork: %s\n", fq_err_name(rc));
    CHECK(rc == FQ_EFORK);
    CHECK(q.id == 0);
    CHECK(children_now() == 0);
    CHECK(rel_count_fds() == fds);

    CHECK(set_soft_limit(RLIMIT_NPROC, saved) == 0);
    q = new_queue(3, 0);
    CHECK(q.id != 0);
    CHECK(queue_works(q) == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    CHECK(rel_count_fds() == fds);
    return 0;
}

static int scn_nproc_respawn(void)
{
    CHECK(drop_root() == 0);
    rlim_t saved = soft_limit(RLIMIT_NPROC);
    fq_queue q = new_queue(1, 0);
    CHECK(q.id != 0);
    CHECK(queue_works(q) == 0);

    /* The only worker dies and cannot be replaced. */
    CHECK(set_soft_limit(RLIMIT_NPROC, 1) == 0);
    struct tally t;
    int64_t t0 = fqp_now_ms();
    CHECK(run_jobs(q, die_job, NULL, 0, 1, 30000, &t) == 0);
    CHECK(t.n == 1 && t.status[1] == 1);
    CHECK(run_jobs(q, NULL, NULL, 0, 5, 60000, &t) == 0);
    fprintf(stderr,
            "    5 jobs with no worker and fork failing: %d x %s "
            "(%.1f s)\n",
            t.status[2], t.last_err, (fqp_now_ms() - t0) / 1000.0);
    CHECK(t.n == 5 && t.status[2] == 5);

    /* fork works again: the same queue recovers. */
    CHECK(set_soft_limit(RLIMIT_NPROC, saved) == 0);
    CHECK(queue_works(q) == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    return 0;
}

/* After a failed fork left no worker, a program that only calls fq_take()
 * (a polling loop) must get its jobs run once fork works again. */
static int scn_nproc_take_only(void)
{
    CHECK(drop_root() == 0);
    rlim_t saved = soft_limit(RLIMIT_NPROC);
    fq_queue q = new_queue(1, 0);
    CHECK(q.id != 0);
    CHECK(queue_works(q) == 0);
    CHECK(set_soft_limit(RLIMIT_NPROC, 1) == 0);
    struct tally t;
    CHECK(run_jobs(q, die_job, NULL, 0, 1, 30000, &t) == 0);
    CHECK(t.n == 1 && t.status[1] == 1);
    fq_stats st;
    CHECK_RC(fq_stats_get(q, &st), 0);
    CHECK(st.workers == 0);
    CHECK(set_soft_limit(RLIMIT_NPROC, saved) == 0);

    int x = 9;
    uint64_t id;
    CHECK_RC(fq_submit(q, square_job, &x, sizeof x, NULL, &id), 0);
    int64_t end = fqp_now_ms() + 20000;
    fq_result r;
    int got = 0;
    while (!got && fqp_now_ms() < end) {
        got = fq_take(q, &r);
        CHECK(got >= 0);
        if (!got)
            fqp_sleep_ms(5);
    }
    fprintf(stderr, "    fq_take() alone after the failed fork: %s\n",
            got ? fq_err_name(r.status) : "nothing within 20 s");
    CHECK(got == 1 && r.id == id && r.status == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    return 0;
}

static int scn_nofile_new(void)
{
    rlim_t saved = soft_limit(RLIMIT_NOFILE);
    int fds = rel_count_fds();
    /* Room for one socket pair and one more descriptor: the first worker
     * can start, the second cannot. */
    CHECK(set_soft_limit(RLIMIT_NOFILE, (rlim_t)nth_free_fd(3)) == 0);

    fq_queue q = {12345};
    fq_options o = {0};
    o.workers = 4;
    int rc = fq_queue_new(&q, &o);
    fprintf(stderr, "    fq_queue_new out of descriptors: %s\n",
            fq_err_name(rc));
    CHECK(rc == FQ_ESYS || rc == FQ_EFORK);
    CHECK(q.id == 0);
    CHECK(children_now() == 0);
    CHECK(rel_count_fds() == fds);

    CHECK(set_soft_limit(RLIMIT_NOFILE, saved) == 0);
    q = new_queue(4, 0);
    CHECK(q.id != 0);
    CHECK(queue_works(q) == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    CHECK(rel_count_fds() == fds);
    return 0;
}

static int scn_nofile_respawn(void)
{
    rlim_t saved = soft_limit(RLIMIT_NOFILE);
    int fds = rel_count_fds();
    /* Fill the low numbers first: poll() refuses more descriptors than the
     * limit, and the limit set below must stay above the queue's own count
     * (as it would when descriptors ran out for real). */
    int fill[32], nfill = 0;
    while (nfill < 32 && nth_free_fd(1) < 32)
        CHECK((fill[nfill++] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
    int lowest = nth_free_fd(1);
    fq_queue q = new_queue(2, 0);
    CHECK(q.id != 0);
    CHECK(queue_works(q) == 0);

    /* Only numbers below the queue's own descriptors may be opened, and all
     * are taken: once the workers are dead and their descriptors closed,
     * none can be reopened, so dead workers cannot be replaced. */
    CHECK(set_soft_limit(RLIMIT_NOFILE, (rlim_t)lowest) == 0);
    struct tally t;
    CHECK(run_jobs(q, die_job, NULL, 0, 2, 30000, &t) == 0);
    CHECK(t.n == 2 && t.status[1] == 2);
    CHECK(run_jobs(q, NULL, NULL, 0, 5, 60000, &t) == 0);
    fprintf(stderr, "    5 jobs with no worker and no descriptors: %d x %s\n",
            t.status[2], t.last_err);
    /* Each job fails with an error that names the cause. */
    CHECK(t.n == 5 && t.status[2] == 5);
    CHECK(strstr(t.last_err, strerror(EMFILE)) != NULL);

    CHECK(set_soft_limit(RLIMIT_NOFILE, saved) == 0);
    CHECK(queue_works(q) == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    while (nfill > 0)
        close(fill[--nfill]);
    CHECK(rel_count_fds() == fds);
    return 0;
}

static int scn_memory_hog(void)
{
    fq_queue q = new_queue(1, 0);
    CHECK(q.id != 0);
    struct tally t;
    int64_t t0 = fqp_now_ms();
    CHECK(run_jobs(q, hog_job, NULL, 0, 1, 60000, &t) == 0);
    fprintf(stderr, "    memory hog: %s (%.1f s)\n", t.last_err,
            (fqp_now_ms() - t0) / 1000.0);
    CHECK(t.n == 1 && t.status[1] == 1 && t.signo == SIGABRT);
    CHECK(queue_works(q) == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    return 0;
}

static int scn_result_too_big(void)
{
    fq_queue q = new_queue(1, 1000);
    CHECK(q.id != 0);
    struct tally t;
    /* Below, at and above the limit, and far above it (a large result is
     * read by a different path than a small one). */
    static const uint64_t sizes[] = {999,  1000,     1001,
                                     5000, 4u << 20, 64u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int64_t t0 = fqp_now_ms();
        CHECK(run_jobs(q, big_reply_job, &sizes[i], sizeof sizes[i], 1, 60000,
                       &t) == 0);
        fprintf(stderr, "    %llu-byte result, limit 1000: %s (%.2f s)\n",
                (unsigned long long)sizes[i],
                t.status[0] ? "result" : t.last_err,
                (fqp_now_ms() - t0) / 1000.0);
        CHECK(t.n == 1);
        CHECK(t.status[sizes[i] <= 1000 ? 0 : 3] == 1);
        CHECK(queue_works(q) == 0);
    }
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    return 0;
}

static int scn_result_enomem(void)
{
    fq_queue q = new_queue(1, 0);
    CHECK(q.id != 0);
    /* The worker exists already and keeps an unlimited address space; the
     * parent can now map only 256 MiB more. */
    CHECK(limit_as(256u << 20) == 0);
    uint64_t size = (uint64_t)1 << 30;
    struct tally t;
    int64_t t0 = fqp_now_ms();
    CHECK(run_jobs(q, big_reply_job, &size, sizeof size, 1, 60000, &t) == 0);
    fprintf(stderr,
            "    1 GiB result, 256 MiB of address space left: %s "
            "(%.2f s)\n",
            t.last_err, (fqp_now_ms() - t0) / 1000.0);
    CHECK(t.n == 1 && t.status[4] == 1);
    CHECK(queue_works(q) == 0);
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    return 0;
}

/* Dense crashes exhaust the re-send budget: jobs queued behind a crashing
 * job, or whose results were still buffered in the worker when it died, are
 * re-sent; each must still get its own result, not a crash report. */
static int every4th_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int i;
    (void)len;
    memcpy(&i, arg, sizeof i);
    if (i % 4 == 3)
        raise(SIGKILL);
    return fq_reply(ctx, &i, sizeof i);
}

static int scn_crash_storm(void)
{
    fq_options o = {0};
    o.workers = 1;
    o.inflight = 100;
    fq_queue q = {0};
    CHECK_RC(fq_queue_new(&q, &o), 0);
    for (int i = 0; i < 200; i++) {
        fq_job_options jo = {0};
        jo.id = (uint64_t)i;
        jo.flags = FQ_JOB_ID;
        CHECK_RC(fq_submit(q, every4th_job, &i, sizeof i, &jo, NULL), 0);
    }
    CHECK_RC(fq_wait(q, 60000), 0);
    fq_result r;
    int innocent_failed = 0, crashed = 0, ok = 0;
    while (fq_take(q, &r) == 1) {
        if (r.id % 4 == 3) {
            crashed += r.status == FQ_ECRASHED && r.signo == SIGKILL;
        } else if (r.status == 0) {
            ok++;
        } else if (innocent_failed++ == 0) {
            fprintf(stderr, "    job %d: %s: %s\n", (int)r.id,
                    fq_err_name(r.status), (const char *)r.data);
        }
    }
    fprintf(stderr,
            "    %d results, %d planned crashes, %d other jobs failed\n", ok,
            crashed, innocent_failed);
    CHECK(crashed == 50);
    CHECK(ok == 150 && innocent_failed == 0);
    CHECK_RC(fq_queue_free(q), 0);
    return 0;
}

/* Workers killed from outside while their init runs. The core cannot tell
 * such a kill from a crash in init: it charges the death to the first job
 * the worker was given (FQ_ECRASHED, naming the init function), sends the
 * other jobs elsewhere, and the queue never stops (no FQ_EINIT). */
static int slow_init(void *udata)
{
    (void)udata;
    fqp_sleep_ms(300);
    return 0;
}

static pid_t first_pid(fq_queue q)
{
    pid_t p[4];
    return fq_worker_pids(q, p, 4) >= 1 ? p[0] : -1;
}

static int scn_init_kills(void)
{
    fq_options o = {0};
    o.workers = 1;
    o.init = slow_init;
    fq_queue q = {0};
    CHECK_RC(fq_queue_new(&q, &o), 0);
    for (int round = 0; round < 4; round++) {
        pid_t old = first_pid(q);
        CHECK(old > 0);
        /* Kill the current worker (its init is done, except in round 0),
         * then its replacement as soon as it exists: inside its init. */
        CHECK(kill(old, SIGKILL) == 0);
        int v = round;
        CHECK_RC(fq_submit(q, square_job, &v, sizeof v, NULL, NULL), 0);
        pid_t fresh = -1;
        int64_t end = fqp_now_ms() + 10000;
        while (fqp_now_ms() < end) {
            fq_poll(q, 5);
            fresh = first_pid(q);
            if (fresh > 0 && fresh != old)
                break;
        }
        CHECK(fresh > 0 && fresh != old);
        CHECK(kill(fresh, SIGKILL) == 0);
        CHECK_RC(fq_wait(q, 30000), 0);
        fq_result r;
        CHECK(fq_take(q, &r) == 1);
        if (r.status != 0)
            fprintf(stderr, "    round %d: %s: %s\n", round,
                    fq_err_name(r.status), (const char *)r.data);
        /* Either the job reached the killed worker (and is charged with its
         * death in init) or it ran on the next one. */
        CHECK(r.status == 0 ||
              (r.status == FQ_ECRASHED && r.signo == SIGKILL &&
               strstr((const char *)r.data, "init function") != NULL));
        CHECK(queue_works(q) == 0);
    }
    CHECK_RC(fq_queue_free(q), 0);
    CHECK(children_now() == 0);
    return 0;
}

/* A host whose fork hooks are slow (a big interpreter, a loaded machine):
 * time passes inside the queue's own housekeeping, and a time limit that
 * expires meanwhile must still be enforced, not slept through. */
static volatile int slow_hooks;

static void slow_parent_hook(void *arg)
{
    (void)arg;
    if (slow_hooks)
        fqp_sleep_ms(200);
}

static int hang_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    fqp_sleep_ms(3000);
    return 0;
}

static int scn_slow_hook_timeout(void)
{
    fq_options o = {0};
    o.workers = 2;
    o.inflight = 1;
    o.hooks.parent = slow_parent_hook;
    fq_queue q = {0};
    CHECK_RC(fq_queue_new(&q, &o), 0);
    slow_hooks = 1;
    /* The first job hangs with a 50 ms limit; the second kills the other
     * worker at once, so the replacement (and its 200 ms hook) happens
     * while the first job's limit runs out. */
    fq_job_options jo = {0};
    jo.timeout_ms = 50;
    jo.id = 1;
    jo.flags = FQ_JOB_ID;
    CHECK_RC(fq_submit(q, hang_job, NULL, 0, &jo, NULL), 0);
    fq_job_options jk = {0};
    jk.id = 2;
    jk.flags = FQ_JOB_ID;
    CHECK_RC(fq_submit(q, die_job, NULL, 0, &jk, NULL), 0);
    int64_t t0 = fqp_now_ms();
    CHECK_RC(fq_wait(q, 10000), 0);
    int64_t took = fqp_now_ms() - t0;
    fq_result r;
    int timedout = 0, crashed = 0;
    while (fq_take(q, &r) == 1) {
        timedout += r.id == 1 && r.status == FQ_ETIMEDOUT;
        crashed += r.id == 2 && r.status == FQ_ECRASHED;
    }
    fprintf(stderr,
            "    50 ms limit with a 200 ms fork hook: %s after %.2f s\n",
            timedout ? "timed out" : "NOT timed out", took / 1000.0);
    CHECK(crashed == 1);
    CHECK(timedout == 1);
    /* The limit is enforced by the end of the slow hook, not when the job
     * ends on its own (3 s). */
    CHECK(took < 2000);
    slow_hooks = 0;
    CHECK_RC(fq_queue_free(q), 0);
    return 0;
}

/* ---- cmocka wrappers --------------------------------------------------- */

static void run_isolated(int (*fn)(void), const char *name)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn());
    int st = rel_wait_deadline(pid, 100000);
    if (st == -1)
        print_error("%s: no answer within 100 s (a hang)\n", name);
    else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_error("%s: scenario process %s %d\n", name,
                    WIFSIGNALED(st) ? "killed by signal" : "exited with",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    assert_int_equal(st, 0);
}

#define SCENARIO(name)                                                         \
    static void test_##name(void **state)                                      \
    {                                                                          \
        (void)state;                                                           \
        run_isolated(scn_##name, #name);                                       \
    }

SCENARIO(nproc_new)
SCENARIO(nproc_respawn)
SCENARIO(nproc_take_only)
SCENARIO(nofile_new)
SCENARIO(nofile_respawn)
SCENARIO(memory_hog)
SCENARIO(result_too_big)
SCENARIO(result_enomem)
SCENARIO(crash_storm)
SCENARIO(init_kills)
SCENARIO(slow_hook_timeout)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nproc_new),
        cmocka_unit_test(test_nproc_respawn),
        cmocka_unit_test(test_nproc_take_only),
        cmocka_unit_test(test_nofile_new),
        cmocka_unit_test(test_nofile_respawn),
        cmocka_unit_test(test_memory_hog),
        cmocka_unit_test(test_result_too_big),
        cmocka_unit_test(test_result_enomem),
        cmocka_unit_test(test_crash_storm),
        cmocka_unit_test(test_init_kills),
        cmocka_unit_test(test_slow_hook_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
