/*
 * Chaos test: streams many jobs through one queue while a separate process
 * signals random workers at random moments (SIGKILL, SIGSEGV, SIGSTOP then
 * SIGCONT), and some jobs crash, exit, fail or hang on purpose.
 *
 * Checked at the end, and printed: every job id has exactly one outcome (no
 * loss, no duplicate); every result value is right; every outcome is one the
 * job could have had (a planned failure keeps its own kind unless the killer
 * got there first; a normal job either succeeds or was crashed); the queue's
 * counters agree; the queue still runs jobs afterwards; no child process and
 * no zombie is left; the number of open descriptors is back to where it was.
 * Descriptors and zombies are also sampled during the run, to catch a leak
 * per dead worker that freeing the queue would hide.
 *
 * A job whose result was written but not yet read when its worker died may
 * run twice (the core re-runs it elsewhere); it still gets one outcome, which
 * is what is checked. Execution counts are not.
 *
 * Usage: chaos [--jobs N] [--workers N] [--fault-ms MS] [--max-faults N]
 *              [--seed S] [--limit-s S] [--init] [--fork-server] [--long]
 * At most --max-faults signals are sent (default: one per 100 jobs).
 * --init gives the workers an init function, as the Python binding does.
 * --fork-server has the fork server fork the workers (the killer then picks
 * among the helper's children).
 * Defaults are the CI size; --long runs 1,000,000 jobs with more faults.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "forkqueue.h"
#include "rel_util.h"

enum kind {
    K_NORMAL,
    K_SEGV,    /* raises SIGSEGV */
    K_ABORT,   /* abort() */
    K_EXIT,    /* _exit(7) in the middle of the job */
    K_FAIL,    /* fq_fail() with a code derived from the id */
    K_TIMEOUT, /* hangs past its per-job time limit */
    K_NKINDS
};

static const char *const kind_name[K_NKINDS] = {
    "normal", "SIGSEGV", "abort", "exit(7)", "fq_fail", "timeout"};

#define TIMEOUT_MS 30
#define EXIT_CODE 7

/* The plan: roughly 1 job in 1000 fails on purpose, in each way. */
static enum kind job_kind(uint64_t id)
{
    switch (rel_mix(id ^ UINT64_C(0xc0ffee)) % 4000) {
    case 0:
        return K_SEGV;
    case 1:
        return K_ABORT;
    case 2:
        return K_EXIT;
    case 3:
    case 4:
    case 5:
    case 6:
        return K_FAIL;
    case 7:
        return K_TIMEOUT;
    default:
        return K_NORMAL;
    }
}

static int fail_code(uint64_t id)
{
    return (int)(id % 97) + 1;
}

static int chaos_job(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t id;
    if (len != sizeof id)
        return fq_fail(ctx, 1000, "bad argument length");
    memcpy(&id, arg, sizeof id);
    if (fq_ctx_id(ctx) != id)
        return fq_fail(ctx, 1001, "fq_ctx_id does not match the argument");
    switch (job_kind(id)) {
    case K_SEGV:
        raise(SIGSEGV);
        break;
    case K_ABORT:
        abort();
    case K_EXIT:
        _exit(EXIT_CODE);
    case K_FAIL:
        return fq_fail(ctx, fail_code(id), "planned failure");
    case K_TIMEOUT:
        for (;;)
            pause();
    default:
        break;
    }
    /* A few microseconds of work, so that signals also land in the middle
     * of jobs and not only between them. */
    volatile uint64_t spin = id;
    for (int i = 0; i < 4000; i++)
        spin = rel_mix(spin);
    uint64_t v = rel_mix(id);
    return fq_reply(ctx, &v, sizeof v);
}

static int trivial_init(void *udata)
{
    (void)udata;
    return 0;
}

/* ---- The killer process ------------------------------------------------ */

struct killer_report {
    uint64_t sigkill, sigsegv, sigstop, skipped;
};

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* A pidfd for a live child of parent, or -1. Checking the parent after
 * opening the pidfd makes pid reuse harmless: the pidfd then names a process
 * that is (or just was) our target, never a stranger. */
static int open_worker(pid_t parent, pid_t pid)
{
    int fd = pidfd_open_(pid);
    char st;
    pid_t pp;
    if (fd < 0)
        return -1;
    if (fqp_proc_stat(pid, &st, &pp, NULL) != 0 || pp != parent || st == 'Z') {
        close(fd);
        return -1;
    }
    return fd;
}

static int list_children(pid_t parent, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)parent,
             (int)parent);
    FILE *f = fopen(path, "re");
    if (!f)
        return fqp_children(parent, out, max, NULL);
    int n = 0, pid;
    while (n < max && fscanf(f, "%d", &pid) == 1)
        out[n++] = pid;
    fclose(f);
    return n;
}

#define MAX_STOPPED 16

static volatile sig_atomic_t parent_gone;

static void on_parent_death(int sig)
{
    (void)sig;
    parent_gone = 1;
}

static void killer(pid_t parent, pid_t wparent, int stop_fd, int report_fd,
                   uint64_t seed, int gap_ms, uint64_t max_faults)
{
    struct killer_report rep = {0};
    struct {
        int pidfd;
        int64_t cont_at;
    } stopped[MAX_STOPPED];
    int nstopped = 0;
    pid_t self = getpid();

    /* If the parent dies (its time limit, ctest's), the workers this
     * process stopped must still be resumed, or they would outlive it,
     * stopped, before they could notice: so a catchable signal. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_parent_death;
    sigaction(SIGTERM, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    for (;;) {
        int64_t now = fqp_now_ms();
        int tmo = (int)(rel_rand(&seed) % (uint64_t)(2 * gap_ms + 1));
        for (int i = 0; i < nstopped; i++)
            if (stopped[i].cont_at - now < tmo)
                tmo = (int)(stopped[i].cont_at - now);
        if (tmo < 0)
            tmo = 0;
        /* Past the fault budget, only wait (and resume stopped workers):
         * on a loaded machine the run slows down while the fault rate does
         * not, and the budget keeps the test's duration bounded. */
        if (rep.sigkill + rep.sigsegv + rep.sigstop >= max_faults &&
            nstopped == 0)
            tmo = -1;
        struct pollfd p = {stop_fd, POLLIN, 0};
        int r = poll(&p, 1, tmo);
        if (r > 0 || parent_gone)
            break;

        now = fqp_now_ms();
        for (int i = 0; i < nstopped;) {
            if (stopped[i].cont_at <= now) {
                pidfd_signal(stopped[i].pidfd, SIGCONT);
                close(stopped[i].pidfd);
                stopped[i] = stopped[--nstopped];
            } else {
                i++;
            }
        }
        if (r < 0)
            continue;

        if (rep.sigkill + rep.sigsegv + rep.sigstop >= max_faults)
            continue;
        pid_t kids[256];
        int nk = list_children(wparent, kids, 256), nw = 0;
        for (int i = 0; i < nk; i++)
            if (kids[i] != self)
                kids[nw++] = kids[i];
        if (nw == 0) {
            rep.skipped++;
            continue;
        }
        int fd = open_worker(wparent, kids[rel_rand(&seed) % (uint64_t)nw]);
        if (fd < 0) {
            rep.skipped++;
            continue;
        }
        switch (rel_rand(&seed) % 3) {
        case 0:
            if (pidfd_signal(fd, SIGKILL) == 0)
                rep.sigkill++;
            break;
        case 1:
            if (pidfd_signal(fd, SIGSEGV) == 0)
                rep.sigsegv++;
            break;
        default:
            if (nstopped < MAX_STOPPED && pidfd_signal(fd, SIGSTOP) == 0) {
                rep.sigstop++;
                stopped[nstopped].pidfd = fd;
                stopped[nstopped].cont_at =
                    now + 1 + (int64_t)(rel_rand(&seed) % 50);
                nstopped++;
                fd = -1;
            } else {
                rep.skipped++;
            }
        }
        if (fd >= 0)
            close(fd);
    }
    /* Never leave a worker stopped: the parent would wait for it. */
    for (int i = 0; i < nstopped; i++)
        pidfd_signal(stopped[i].pidfd, SIGCONT);
    ssize_t w = write(report_fd, &rep, sizeof rep);
    _exit(w == (ssize_t)sizeof rep ? 0 : 1);
}

/* ---- The parent -------------------------------------------------------- */

struct run {
    uint64_t njobs, next;
    unsigned char *seen; /* one bit per id */
    uint64_t outcomes, dup, bad;
    uint64_t by_status_ok, by_status_fail, by_status_crash, by_status_timeout;
    uint64_t planned[K_NKINDS], planned_kept[K_NKINDS], killed[K_NKINDS];
    int fd_base, fd_max, zombie_max, workers;
    int64_t deadline_ms;
    int stop;
};

/* Progress, for the time-limit message: tells a hang from slowness. */
static volatile uint64_t g_outcomes;
static volatile int64_t g_last_outcome_ms;

static void on_alarm(int sig)
{
    char msg[160];
    (void)sig;
    /* snprintf is not async-signal-safe, but nothing else runs after it. */
    int n = snprintf(msg, sizeof msg,
                     "chaos: FAIL: time limit reached after %" PRIu64
                     " outcomes, the last one %.1f s ago\n",
                     g_outcomes, (fqp_now_ms() - g_last_outcome_ms) / 1000.0);
    ssize_t w = write(2, msg, (size_t)n);
    (void)w;
    _exit(3);
}

static int produce(fq_queue q, void *ud)
{
    struct run *r = ud;
    if (r->next >= r->njobs)
        return 0;
    uint64_t id = r->next++;
    fq_job_options jo = {0};
    jo.id = id;
    jo.flags = FQ_JOB_ID;
    if (job_kind(id) == K_TIMEOUT)
        jo.timeout_ms = TIMEOUT_MS;
    int rc = fq_submit(q, chaos_job, &id, sizeof id, &jo, NULL);
    if (rc != 0) {
        fprintf(stderr, "chaos: FAIL: fq_submit(%" PRIu64 "): %s\n", id,
                fq_err_name(rc));
        return rc;
    }
    return 1;
}

#define BAD(r, ...)                                                            \
    do {                                                                       \
        if ((r)->bad++ < 20)                                                   \
            fprintf(stderr, "chaos: FAIL: " __VA_ARGS__);                      \
    } while (0)

static int count_zombie_children(void)
{
    pid_t kids[1024];
    int n = list_children(getpid(), kids, 1024), z = 0;
    for (int i = 0; i < n; i++) {
        char st;
        pid_t pp;
        if (fqp_proc_stat(kids[i], &st, &pp, NULL) == 0 && st == 'Z')
            z++;
    }
    return z;
}

static int consume(fq_queue q, const fq_result *res, void *ud)
{
    struct run *r = ud;
    uint64_t id = res->id;
    (void)q;

    r->outcomes++;
    g_outcomes = r->outcomes;
    g_last_outcome_ms = fqp_now_ms();
    if (id >= r->njobs) {
        BAD(r, "outcome for unknown id %" PRIu64 "\n", id);
        return 0;
    }
    if (r->seen[id / 8] & (1u << (id % 8))) {
        r->dup++;
        BAD(r, "second outcome for id %" PRIu64 "\n", id);
        return 0;
    }
    r->seen[id / 8] |= (unsigned char)(1u << (id % 8));

    enum kind k = job_kind(id);
    int kept = 0;  /* the outcome is the planned one */
    int wrong = 0; /* neither planned nor explained by the killer */
    r->planned[k]++;
    switch (res->status) {
    case 0: {
        uint64_t v;
        r->by_status_ok++;
        if (k != K_NORMAL || res->len != sizeof v) {
            BAD(r, "id %" PRIu64 " (%s): unexpected result of %zu bytes\n", id,
                kind_name[k], res->len);
            break;
        }
        memcpy(&v, res->data, sizeof v);
        if (v != rel_mix(id))
            BAD(r, "id %" PRIu64 ": wrong result value\n", id);
        kept = 1;
        break;
    }
    case FQ_EJOB:
        r->by_status_fail++;
        if (k != K_FAIL || res->code != fail_code(id) ||
            strcmp(res->data, "planned failure") != 0)
            BAD(r, "id %" PRIu64 " (%s): FQ_EJOB code %d \"%s\"\n", id,
                kind_name[k], res->code, (const char *)res->data);
        kept = 1;
        break;
    case FQ_ECRASHED:
        r->by_status_crash++;
        /* The killer's signals can end any job this way. */
        if (res->signo == SIGKILL || (res->signo == SIGSEGV && k != K_SEGV))
            break;
        if ((k == K_SEGV && res->signo == SIGSEGV) ||
            (k == K_ABORT && res->signo == SIGABRT) ||
            (k == K_EXIT && res->signo == 0 && res->exit_status == EXIT_CODE)) {
            kept = 1;
            break;
        }
        BAD(r, "id %" PRIu64 " (%s): FQ_ECRASHED signo %d exit %d: %s\n", id,
            kind_name[k], res->signo, res->exit_status,
            (const char *)res->data);
        wrong = 1;
        break;
    case FQ_ETIMEDOUT:
        r->by_status_timeout++;
        if (k != K_TIMEOUT)
            BAD(r, "id %" PRIu64 " (%s): FQ_ETIMEDOUT\n", id, kind_name[k]);
        kept = 1;
        break;
    default:
        BAD(r, "id %" PRIu64 " (%s): status %s: %s\n", id, kind_name[k],
            fq_err_name(res->status), res->data ? (const char *)res->data : "");
        wrong = 1;
    }
    if (kept)
        r->planned_kept[k]++;
    else if (!wrong)
        r->killed[k]++;

    if (r->outcomes % 2048 == 0) {
        int fds = rel_count_fds(), z = count_zombie_children();
        if (fds > r->fd_max)
            r->fd_max = fds;
        if (z > r->zombie_max)
            r->zombie_max = z;
        /* Each worker holds a few descriptors in the parent; a leak per
         * dead worker would pass this bound within a few hundred deaths. */
        if (fds > r->fd_base + 4 * r->workers + 16) {
            BAD(r, "%d descriptors open during the run (base %d)\n", fds,
                r->fd_base);
            return -1;
        }
        if (z > 2 * r->workers + 8) {
            BAD(r, "%d zombie children during the run\n", z);
            return -1;
        }
    }
    return 0;
}

/* Runs n more normal jobs (ids from `first` on whose plan is "normal") and
 * checks every result. */
static int verify_queue_works(fq_queue q, uint64_t first, int n)
{
    uint64_t id = first;
    for (int i = 0; i < n; i++, id++) {
        while (job_kind(id) != K_NORMAL)
            id++;
        fq_job_options jo = {0};
        jo.id = id;
        jo.flags = FQ_JOB_ID;
        if (fq_submit(q, chaos_job, &id, sizeof id, &jo, NULL) != 0)
            return -1;
    }
    if (fq_wait(q, 30000) != 0)
        return -1;
    fq_result res;
    int got = 0;
    while (fq_take(q, &res) == 1) {
        uint64_t v;
        if (res.status != 0 || res.len != sizeof v)
            return -1;
        memcpy(&v, res.data, sizeof v);
        if (v != rel_mix(res.id))
            return -1;
        got++;
    }
    return got == n ? 0 : -1;
}

int main(int argc, char **argv)
{
    uint64_t njobs = 200000,
             seed = (uint64_t)time(NULL) * 1000003u + (uint64_t)getpid();
    int workers = 4, gap_ms = 3, limit_s = 120, with_init = 0, fsrv = 0;
    uint64_t max_faults = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--long")) {
            njobs = 1000000;
            gap_ms = 2;
            limit_s = 900;
        } else if (!strcmp(a, "--init")) {
            with_init = 1; /* workers run an init function (as Python's) */
        } else if (!strcmp(a, "--fork-server")) {
            fsrv = 1;
        } else if (!strcmp(a, "--jobs") && v) {
            njobs = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--workers") && v) {
            workers = atoi(v);
            i++;
        } else if (!strcmp(a, "--fault-ms") && v) {
            gap_ms = atoi(v);
            i++;
        } else if (!strcmp(a, "--max-faults") && v) {
            max_faults = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            seed = strtoull(v, NULL, 0);
            i++;
        } else if (!strcmp(a, "--limit-s") && v) {
            limit_s = atoi(v);
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--jobs N] [--workers N] [--fault-ms MS] "
                    "[--max-faults N] [--seed S] [--limit-s S] [--init] "
                    "[--fork-server] [--long]\n",
                    argv[0]);
            return 2;
        }
    }
    if (gap_ms < 1)
        gap_ms = 1;
    if (max_faults == 0)
        max_faults = njobs / 100 + 1;
    printf("chaos: %" PRIu64 " jobs, %d workers, a fault every ~%d ms "
           "(at most %" PRIu64 "), seed %" PRIu64 "\n",
           njobs, workers, gap_ms, max_faults, seed);
    fflush(stdout);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)limit_s);

    int kids0 = fqp_children(getpid(), NULL, 0, NULL);
    struct run r;
    memset(&r, 0, sizeof r);
    r.njobs = njobs;
    r.workers = workers;
    r.seen = calloc((size_t)(njobs / 8 + 1), 1);
    r.fd_base = r.fd_max = rel_count_fds();
    if (!r.seen)
        return 2;

    int64_t t0 = fqp_now_ms();
    fq_queue q = {0};
    fq_options o = {0};
    o.workers = workers;
    if (with_init)
        o.init = trivial_init;
    if (fsrv && fq_forkserver_start() != 0) {
        fprintf(stderr, "chaos: FAIL: fq_forkserver_start\n");
        return 1;
    }
    o.fork_server = fsrv;
    int rc = fq_queue_new(&q, &o);
    if (rc != 0) {
        fprintf(stderr, "chaos: FAIL: fq_queue_new: %s\n", fq_err_name(rc));
        return 1;
    }

    int stop_p[2], rep_p[2];
    if (pipe2(stop_p, O_CLOEXEC) || pipe2(rep_p, O_CLOEXEC))
        return 2;
    pid_t parent = getpid();
    /* The workers' parent, known here: a fork does not inherit the helper. */
    pid_t wparent = fsrv ? fq_forkserver_pid() : parent;
    if (wparent <= 0)
        return 2;
    pid_t kpid = fork();
    if (kpid < 0)
        return 2;
    if (kpid == 0) {
        close(stop_p[1]);
        close(rep_p[0]);
        killer(parent, wparent, stop_p[0], rep_p[1], seed ^ 0x5eed, gap_ms,
               max_faults);
    }
    close(stop_p[0]);
    close(rep_p[1]);

    rc = fq_stream(q, produce, consume, &r, 0);
    int64_t t1 = fqp_now_ms();

    /* Workers inherited the pipes, so the killer is told to stop with a
     * byte rather than by end of file. */
    struct killer_report rep = {0};
    ssize_t w = write(stop_p[1], "x", 1);
    ssize_t got = read(rep_p[0], &rep, sizeof rep);
    int kst = rel_wait_deadline(kpid, 10000);
    close(stop_p[1]);
    close(rep_p[0]);
    if (w != 1 || got != (ssize_t)sizeof rep || kst != 0) {
        fprintf(stderr, "chaos: FAIL: killer process did not report\n");
        r.bad++;
    }

    if (rc != 0) {
        fprintf(stderr, "chaos: FAIL: fq_stream returned %d (%s)\n", rc,
                fq_err_name(rc));
        r.bad++;
    }
    uint64_t missing = 0;
    for (uint64_t id = 0; id < njobs; id++)
        if (!(r.seen[id / 8] & (1u << (id % 8))))
            if (missing++ < 5)
                fprintf(stderr, "chaos: FAIL: no outcome for id %" PRIu64 "\n",
                        id);
    if (missing)
        r.bad++;

    fq_stats st;
    fq_stats_get(q, &st);
    if (st.submitted != njobs || st.finished != njobs || st.taken != njobs ||
        st.pending != 0 || st.running != 0 || st.crashed != r.by_status_crash ||
        st.timedout != r.by_status_timeout) {
        fprintf(stderr,
                "chaos: FAIL: stats submitted %" PRIu64 " finished %" PRIu64
                " taken %" PRIu64 " pending %" PRIu64 " running %" PRIu64
                " crashed %" PRIu64 " (seen %" PRIu64 ") timedout %" PRIu64
                " (seen %" PRIu64 ")\n",
                st.submitted, st.finished, st.taken, st.pending, st.running,
                st.crashed, r.by_status_crash, st.timedout,
                r.by_status_timeout);
        r.bad++;
    }

    /* The queue goes on: more jobs, all answered (ids past the stream). */
    int works = verify_queue_works(q, njobs, 1000) == 0;
    if (!works) {
        fprintf(stderr, "chaos: FAIL: the queue does not work after chaos\n");
        r.bad++;
    }
    int nw = fq_worker_pids(q, NULL, 0);
    rc = fq_queue_free(q);
    if (rc != 0) {
        fprintf(stderr, "chaos: FAIL: fq_queue_free: %s\n", fq_err_name(rc));
        r.bad++;
    }
    fq_forkserver_stop();
    int zombies = 0;
    int kids = fqp_children(getpid(), NULL, 0, &zombies);
    int fds = rel_count_fds();
    if (kids != kids0 || zombies != 0) {
        fprintf(stderr, "chaos: FAIL: %d children (%d zombies) left\n",
                kids - kids0, zombies);
        r.bad++;
    }
    if (fds != r.fd_base) {
        fprintf(stderr, "chaos: FAIL: %d descriptors open, %d before\n", fds,
                r.fd_base);
        r.bad++;
    }

    uint64_t planned_fail = 0, kept_fail = 0, killed = 0;
    for (int k = 1; k < K_NKINDS; k++) {
        planned_fail += r.planned[k];
        kept_fail += r.planned_kept[k];
    }
    for (int k = 0; k < K_NKINDS; k++)
        killed += r.killed[k];
    printf("chaos: %.1f s, %" PRIu64 " respawns\n", (t1 - t0) / 1000.0,
           st.respawns);
    printf("chaos: faults injected: %" PRIu64 " SIGKILL, %" PRIu64
           " SIGSEGV, %" PRIu64 " SIGSTOP+SIGCONT (%" PRIu64
           " times no live worker); planned job failures: %" PRIu64
           " (SIGSEGV %" PRIu64 ", abort %" PRIu64 ", exit %" PRIu64
           ", fq_fail %" PRIu64 ", timeout %" PRIu64 ")\n",
           rep.sigkill, rep.sigsegv, rep.sigstop, rep.skipped, planned_fail,
           r.planned[K_SEGV], r.planned[K_ABORT], r.planned[K_EXIT],
           r.planned[K_FAIL], r.planned[K_TIMEOUT]);
    printf("chaos: outcomes checked: %" PRIu64 " of %" PRIu64 " ids, %" PRIu64
           " missing, %" PRIu64 " duplicate; %" PRIu64
           " results (values verified), %" PRIu64 " FQ_EJOB, %" PRIu64
           " FQ_ECRASHED, %" PRIu64 " FQ_ETIMEDOUT; %" PRIu64
           " planned failures kept their kind, %" PRIu64
           " jobs ended by the killer\n",
           r.outcomes, njobs, missing, r.dup, r.by_status_ok, r.by_status_fail,
           r.by_status_crash, r.by_status_timeout, kept_fail, killed);
    printf("chaos: after: queue %s (1000 more jobs), %d workers, %d children "
           "and %d zombies left, descriptors %d before / %d after "
           "(max %d during), max %d zombies during\n",
           works ? "works" : "BROKEN", nw, kids - kids0, zombies, r.fd_base,
           fds, r.fd_max, r.zombie_max);
    printf("chaos: %s\n", r.bad ? "FAILED" : "OK");
    free(r.seen);
    return r.bad ? 1 : 0;
}
