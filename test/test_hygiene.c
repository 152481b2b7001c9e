/*
 * Process hygiene: descriptors that reach workers, zombies, workers of a
 * parent killed with SIGKILL, SIGPIPE, and the signal state of the host.
 */
#include "fq_test.h"

#include <sys/prctl.h>
#include <sys/socket.h>

/* ---- descriptors ------------------------------------------------------ */

#define MAXFD 256

struct fdent {
    int fd;
    int cloexec;
    char target[120];
};

struct fdlist {
    pid_t pid;
    int n;
    struct fdent e[MAXFD];
};

/* Lists the open descriptors of the calling process (without the one used
 * for listing). No asserts: it runs in workers too. */
static int list_fds(struct fdlist *l)
{
    memset(l, 0, sizeof *l);
    l->pid = getpid();
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && l->n < MAXFD) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        struct fdent *x = &l->e[l->n];
        ssize_t k = readlink(path, x->target, sizeof x->target - 1);
        if (k < 0)
            continue;
        x->target[k] = 0;
        x->fd = fd;
        int fl = fcntl(fd, F_GETFD);
        x->cloexec = fl >= 0 && (fl & FD_CLOEXEC);
        l->n++;
    }
    closedir(d);
    return 0;
}

static int job_list_fds(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)len;
    struct fdlist l;
    if (list_fds(&l) != 0)
        return fq_fail(ctx, 1, "cannot list /proc/self/fd");
    /* Hold the worker a moment, so that the next listing job goes to the
     * other worker of a queue with inflight 1. */
    int ms = arg ? *(const int *)arg : 0;
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
    return fq_reply(ctx, &l, sizeof l) == 0 ? 0 : 100;
}

static const struct fdent *find_fd(const struct fdlist *l, int fd)
{
    for (int i = 0; i < l->n; i++)
        if (l->e[i].fd == fd)
            return &l->e[i];
    return NULL;
}

static int has_target(const struct fdlist *l, const char *target)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->e[i].target, target) == 0)
            return 1;
    return 0;
}

/* Whether fd with this target was already open in `before`. */
static int same_in(const struct fdlist *before, const struct fdent *x)
{
    const struct fdent *b = find_fd(before, x->fd);
    return b && strcmp(b->target, x->target) == 0;
}

/*
 * What a worker may hold: everything the test process had before any queue
 * existed (`before`: stdin/out/err and the test's own descriptors, which a
 * fork keeps), plus its own channel: one socket (maybe under two numbers)
 * that the parent does not hold. Nothing else: no channel or pidfd of
 * another worker, of another queue, or the parent's end of its own.
 */
static void check_worker_fds(const struct fdlist *w,
                             const struct fdlist *before,
                             const struct fdlist *parent_now,
                             const int *inherit, int ninherit)
{
    for (int fd = 0; fd <= 2; fd++) {
        const struct fdent *b = find_fd(before, fd);
        if (b)
            assert_non_null(find_fd(w, fd));
    }
    for (int i = 0; i < ninherit; i++) {
        const struct fdent *b = find_fd(before, inherit[i]);
        assert_non_null(b);
        const struct fdent *x = find_fd(w, inherit[i]);
        if (!x)
            print_error("worker %d lacks inheritable fd %d (%s)\n", (int)w->pid,
                        inherit[i], b->target);
        assert_non_null(x);
        assert_string_equal(x->target, b->target);
    }
    const char *channel = NULL;
    int extra = 0;
    for (int i = 0; i < w->n; i++) {
        const struct fdent *x = &w->e[i];
        if (same_in(before, x))
            continue;
        extra++;
        int ok = strncmp(x->target, "socket:[", 8) == 0 &&
                 !has_target(parent_now, x->target) &&
                 (!channel || strcmp(channel, x->target) == 0);
        if (!ok)
            print_error("worker %d: leaked fd %d -> %s\n", (int)w->pid, x->fd,
                        x->target);
        assert_true(ok);
        channel = x->target;
        /* so that a program a job starts does not inherit it */
        assert_true(x->cloexec);
    }
    if (extra < 1 || extra > 2)
        print_error("worker %d: %d descriptors besides the inherited ones\n",
                    (int)w->pid, extra);
    assert_true(extra >= 1 && extra <= 2);
}

/* Runs a listing job on each worker of q (inflight 1, `nw` workers) and
 * checks it. */
static void check_queue_fds(fq_queue q, int nw, const struct fdlist *before,
                            const int *inherit, int ninherit)
{
    struct fdlist parent_now;
    assert_int_equal(list_fds(&parent_now), 0);
    /* Every descriptor the library made in the parent is close-on-exec. */
    for (int i = 0; i < parent_now.n; i++)
        if (!same_in(before, &parent_now.e[i])) {
            if (!parent_now.e[i].cloexec)
                print_error("library fd %d (%s) is not close-on-exec\n",
                            parent_now.e[i].fd, parent_now.e[i].target);
            assert_true(parent_now.e[i].cloexec);
        }
    pid_t seen[8];
    int nseen = 0;
    for (int attempt = 0; attempt < 20 && nseen < nw; attempt++) {
        int ms = 50;
        for (int i = 0; i < nw; i++)
            FQT_OK(fq_submit(q, job_list_fds, &ms, sizeof ms, NULL, NULL));
        for (int i = 0; i < nw; i++) {
            fq_result r;
            assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
            assert_int_equal(r.status, 0);
            assert_int_equal(r.len, sizeof(struct fdlist));
            struct fdlist *w = malloc(sizeof *w);
            assert_non_null(w);
            memcpy(w, r.data, sizeof *w);
            check_worker_fds(w, before, &parent_now, inherit, ninherit);
            int k = 0;
            while (k < nseen && seen[k] != w->pid)
                k++;
            if (k == nseen && nseen < 8)
                seen[nseen++] = w->pid;
            free(w);
        }
    }
    /* every worker was checked */
    assert_int_equal(nseen, nw);
}

static int job_exit(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    _exit(9);
}

static void test_no_fd_leaks(void **state)
{
    (void)state;
    /* The test's own descriptors: inheritable ones must reach the workers
     * (a fork keeps them, and jobs may use them). */
    int nul = open("/dev/null", O_RDONLY);
    assert_true(nul >= 0);
    int pp[2];
    assert_int_equal(pipe(pp), 0);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int cx = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(cx >= 0);
    const int inherit[] = {nul, pp[0], pp[1], sp[0], sp[1]};
    struct fdlist before;
    assert_int_equal(list_fds(&before), 0);

    fq_options o = {.workers = 2, .inflight = 1};
    fq_queue a = fqt_queue_opts(&o);
    fq_queue b = fqt_queue_opts(&o);
    o.workers = 3;
    fq_queue c = fqt_queue_opts(&o);
    check_queue_fds(a, 2, &before, inherit, 5);
    check_queue_fds(b, 2, &before, inherit, 5);
    check_queue_fds(c, 3, &before, inherit, 5);

    /* Workers forked later (refork, replacement of a dead worker) hold no
     * channel of the queues that exist by then either. */
    FQT_OK(fq_refork(a));
    check_queue_fds(a, 2, &before, inherit, 5);
    FQT_OK(fq_submit(b, job_exit, NULL, 0, NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(b, &r, 30000), 1);
    assert_int_equal(r.status, FQ_ECRASHED);
    int64_t end = fqp_now_ms() + 10000;
    while (fq_worker_pids(b, NULL, 0) != 2 && fqp_now_ms() < end)
        assert_true(fq_poll(b, 10) >= 0);
    check_queue_fds(b, 2, &before, inherit, 5);
    check_queue_fds(c, 3, &before, inherit, 5);

    /* Freeing the queues closes every descriptor they opened. */
    FQT_OK(fq_queue_free(a));
    FQT_OK(fq_queue_free(b));
    FQT_OK(fq_queue_free(c));
    struct fdlist after;
    assert_int_equal(list_fds(&after), 0);
    assert_int_equal(after.n, before.n);
    for (int i = 0; i < after.n; i++)
        assert_true(same_in(&before, &after.e[i]));
    close(nul);
    close(pp[0]);
    close(pp[1]);
    close(sp[0]);
    close(sp[1]);
    close(cx);
}

/* ---- zombies ---------------------------------------------------------- */

static int job_crash_or_square(fq_ctx *ctx, const void *arg, size_t len)
{
    uint64_t x;
    memcpy(&x, arg, sizeof x);
    (void)len;
    if (x % 10 == 3)
        _exit(3);
    if (x % 10 == 6)
        abort();
    x = fqt_square(x);
    return fq_reply(ctx, &x, sizeof x) == 0 ? 0 : 100;
}

static void assert_no_zombies(void)
{
    int z = -1;
    assert_true(fqt_count_children(&z) >= 0);
    if (z)
        print_error("%d zombie children\n", z);
    assert_int_equal(z, 0);
}

static void run_crashy(fq_queue q, int n)
{
    for (uint64_t i = 0; i < (uint64_t)n; i++)
        FQT_OK(fq_submit(q, job_crash_or_square, &i, sizeof i, NULL, NULL));
    FQT_OK(fq_wait(q, 30000));
    fq_result r;
    while (fq_take(q, &r) == 1)
        ;
}

static void test_no_zombies(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    /* While the queue lives: crashed and timed-out workers are reaped. */
    fq_queue q = fqt_queue(2, 0);
    run_crashy(q, 100);
    fq_job_options jo = {.timeout_ms = 50};
    FQT_OK(fq_submit(q, job_exit, NULL, 0, NULL, NULL));
    fqt_gate_arg ga = fqt_gate_arg_of(&g, 1);
    FQT_OK(fq_submit(q, fqt_job_gate, &ga, sizeof ga, &jo, NULL));
    FQT_OK(fq_wait(q, 30000));
    assert_no_zombies();
    /* finish */
    FQT_OK(fq_finish(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));

    /* cancel with work in flight */
    q = fqt_queue(2, 0);
    run_crashy(q, 50);
    fqt_submit_gate(q, &g, 1, 0);
    (void)fqt_gate_started(q, &g);
    for (uint64_t i = 0; i < 20; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_cancel(q));
    fqt_assert_no_children();
    FQT_OK(fq_queue_free(q));

    /* free with work in flight */
    q = fqt_queue(2, 0);
    run_crashy(q, 50);
    fqt_submit_gate(q, &g, 1, 1);
    (void)fqt_gate_started(q, &g);
    for (uint64_t i = 0; i < 20; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
    fqt_gate_free(&g);
}

/* A host that reaps every child itself (waitpid(-1)) or ignores SIGCHLD:
 * outcomes stay correct, crashes are still crashes. */
static volatile sig_atomic_t g_sigchld;

static void on_sigchld(int sig)
{
    (void)sig;
    g_sigchld++;
}

/* Modes: 0 the host reaps with waitpid(-1); 1 SIGCHLD ignored; 2 a SIGCHLD
 * handler without SA_RESTART interrupts the library's waits. */
static void test_host_reaps_children(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) {
        struct sigaction ign, old;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = mode == 1 ? SIG_IGN : on_sigchld;
        g_sigchld = 0;
        if (mode >= 1)
            assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
        fq_queue q = fqt_queue(2, 0);
        enum { N = 60 };
        for (uint64_t i = 0; i < N; i++)
            FQT_OK(fq_submit(q, job_crash_or_square, &i, sizeof i, NULL, NULL));
        int got = 0;
        int64_t end = fqp_now_ms() + 30000;
        while (got < N && fqp_now_ms() < end) {
            int st;
            if (mode == 0)
                while (waitpid(-1, &st, WNOHANG) > 0)
                    ; /* steal every status */
            fq_result r;
            int rc = fq_take(q, &r);
            assert_true(rc >= 0);
            if (rc == 0) {
                assert_true(fq_poll(q, 5) >= 0);
                continue;
            }
            got++;
            if (r.id % 10 == 3 || r.id % 10 == 6) {
                assert_int_equal(r.status, FQ_ECRASHED);
                fqt_assert_msg(&r);
                /* the status may be lost; if known, it is right */
                if (r.id % 10 == 3 && r.signo == 0 && r.exit_status != -1)
                    assert_int_equal(r.exit_status, 3);
                if (r.id % 10 == 6 && r.signo != 0)
                    assert_int_equal(r.signo, SIGABRT);
            } else {
                assert_true(fqt_u64(&r) == fqt_square(r.id));
            }
        }
        assert_int_equal(got, N);
        if (mode == 2) {
            /* waits resume after the signal (return_on_eintr is 0) */
            for (uint64_t i = 0; i < 20; i++)
                FQT_OK(fq_submit(q, job_crash_or_square, &i, sizeof i, NULL,
                                 NULL));
            FQT_OK(fq_wait(q, 30000));
            assert_true(g_sigchld > 0);
        }
        FQT_OK(fq_queue_free(q));
        if (mode >= 1)
            assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
        int st;
        while (waitpid(-1, &st, WNOHANG) > 0)
            ;
        fqt_assert_no_children();
    }
}

/* ---- parent killed with SIGKILL --------------------------------------- */

static int job_block_ignoring(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)len;
    int fd;
    memcpy(&fd, arg, sizeof fd);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    pid_t p = getpid();
    (void)fqt_write_all(fd, &p, sizeof p);
    for (;;)
        pause();
    return 0;
}

/* The middle process: owns a queue, reports its workers, then waits to be
 * killed. Exit codes tell the test what went wrong. */
static void middle(int report_fd)
{
    fqt_gate g;
    if (pipe2(g.started, O_CLOEXEC) || pipe2(g.open, O_CLOEXEC))
        _exit(20);
    fq_options o = {.workers = 3, .inflight = 1};
    fq_queue q = {0};
    if (fq_queue_new(&q, &o) != 0)
        _exit(21);
    fqt_gate_arg ga = fqt_gate_arg_of(&g, 1);
    if (fq_submit(q, fqt_job_gate, &ga, sizeof ga, NULL, NULL) != 0)
        _exit(22);
    if (fq_submit(q, job_block_ignoring, &g.started[1], sizeof(int), NULL,
                  NULL) != 0)
        _exit(23);
    pid_t p[2];
    for (int i = 0; i < 2; i++)
        if (fqt_read_driving(q, g.started[0], &p[i], sizeof p[i], 20000))
            _exit(24);
    pid_t w[3];
    if (fq_worker_pids(q, w, 3) != 3)
        _exit(25);
    if (fqt_write_all(report_fd, w, sizeof w) != 0)
        _exit(26);
    for (;;)
        pause();
}

/* A subreaper: orphaned workers become its children, so it can see them
 * go without depending on what init does. */
static void subreaper(void)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        _exit(10);
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) != 0)
        _exit(11);
    pid_t m = fork();
    if (m < 0)
        _exit(12);
    if (m == 0) {
        close(rep[0]);
        middle(rep[1]);
        _exit(13);
    }
    close(rep[1]);
    pid_t w[3];
    if (fqt_read_driving((fq_queue){0}, rep[0], w, sizeof w, 20000) != 0) {
        kill(m, SIGKILL);
        int st = fqt_wait_child(m);
        _exit(st >= 20 && st < 30 ? st : 14);
    }
    unsigned long long start[3];
    for (int i = 0; i < 3; i++)
        start[i] = fqt_proc_start(w[i]);
    kill(m, SIGKILL);
    if (fqt_wait_child(m) != 1000 + SIGKILL)
        _exit(15);
    /* Every worker must be gone within 2 s (the requirement). */
    int64_t end = fqp_now_ms() + 2000;
    int alive = 3;
    while (alive > 0 && fqp_now_ms() < end) {
        int st;
        while (waitpid(-1, &st, WNOHANG) > 0)
            ;
        alive = 0;
        for (int i = 0; i < 3; i++)
            alive += fqt_proc_alive(w[i], start[i]);
        if (alive) {
            struct timespec ts = {0, 2 * 1000 * 1000}; /* polling interval */
            nanosleep(&ts, NULL);
        }
    }
    /* Clean up whatever is left, so that nothing outlives the test. */
    for (int i = 0; i < 3; i++)
        if (fqt_proc_alive(w[i], start[i]))
            kill(w[i], SIGKILL);
    int st;
    while (waitpid(-1, &st, 0) > 0)
        ;
    _exit(alive ? 30 + alive : 0);
}

static void test_parent_killed(void **state)
{
    (void)state;
    pid_t s = fork();
    assert_true(s >= 0);
    if (s == 0)
        subreaper();
    int st = fqt_wait_child(s);
    if (st > 30 && st < 40)
        print_error("%d workers still alive 2 s after their parent was "
                    "killed\n",
                    st - 30);
    else if (st)
        print_error("helper failed with status %d\n", st);
    assert_int_equal(st, 0);
}

/* ---- SIGPIPE ---------------------------------------------------------- */

static int job_len(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    uint64_t l = len;
    return fq_reply(ctx, &l, sizeof l) == 0 ? 0 : 100;
}

/* In a child process, so that a SIGPIPE shows as its cause of death. */
static int sigpipe_scenario(void)
{
    signal(SIGPIPE, SIG_DFL);
    fqt_gate g;
    if (pipe2(g.started, O_CLOEXEC) || pipe2(g.open, O_CLOEXEC))
        return 2;
    fq_options o = {.workers = 1, .inflight = 8};
    fq_queue q = {0};
    if (fq_queue_new(&q, &o) != 0)
        return 3;
    fqt_gate_arg ga = fqt_gate_arg_of(&g, 1);
    uint64_t held;
    if (fq_submit(q, fqt_job_gate, &ga, sizeof ga, NULL, &held) != 0)
        return 4;
    pid_t w;
    if (fqt_read_driving(q, g.started[0], &w, sizeof w, 20000) != 0)
        return 5;
    size_t big = 16u << 20;
    char *a = calloc(1, big);
    if (!a)
        return 6;
    for (int i = 0; i < 4; i++)
        if (fq_submit(q, job_len, a, big, NULL, NULL) != 0)
            return 7;
    free(a);
    /* The parent now has megabytes queued for a worker that reads
     * nothing; kill it with the data still pending. */
    for (int i = 0; i < 5; i++)
        if (fq_poll(q, 0) < 0)
            return 8;
    if (kill(w, SIGKILL) != 0)
        return 9;
    if (fq_wait(q, 60000) != 0)
        return 10;
    for (int i = 0; i < 5; i++) {
        fq_result r;
        if (fq_take(q, &r) != 1)
            return 11;
        if (r.id == held) {
            if (r.status != FQ_ECRASHED || r.signo != SIGKILL)
                return 12;
        } else {
            uint64_t l;
            if (r.status != 0 || r.len != sizeof l)
                return 13;
            memcpy(&l, r.data, sizeof l);
            if (l != big)
                return 14;
        }
    }
    if (fq_queue_free(q) != 0)
        return 15;
    return 0;
}

static void test_no_sigpipe(void **state)
{
    (void)state;
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0)
        _exit(sigpipe_scenario());
    int st = fqt_wait_child(c);
    if (st == 1000 + SIGPIPE)
        print_error("the parent was killed by SIGPIPE\n");
    else if (st)
        print_error("scenario failed at step %d\n", st);
    assert_int_equal(st, 0);
}

/* ---- signal state ----------------------------------------------------- */

struct sigstate {
    struct sigaction sa[NSIG];
    sigset_t mask;
};

static void get_sigstate(struct sigstate *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 1; i < NSIG; i++)
        sigaction(i, NULL, &s->sa[i]);
    sigprocmask(SIG_SETMASK, NULL, &s->mask);
}

static void assert_same_sigstate(const struct sigstate *a,
                                 const struct sigstate *b)
{
    for (int i = 1; i < NSIG; i++) {
        if (a->sa[i].sa_handler != b->sa[i].sa_handler ||
            a->sa[i].sa_flags != b->sa[i].sa_flags)
            print_error("signal %d (%s) changed\n", i, strsignal(i));
        assert_true(a->sa[i].sa_handler == b->sa[i].sa_handler);
        assert_int_equal(a->sa[i].sa_flags, b->sa[i].sa_flags);
        for (int k = 1; k < NSIG; k++)
            assert_int_equal(sigismember(&a->sa[i].sa_mask, k),
                             sigismember(&b->sa[i].sa_mask, k));
    }
    for (int k = 1; k < NSIG; k++)
        assert_int_equal(sigismember(&a->mask, k), sigismember(&b->mask, k));
}

static void test_no_signal_handlers(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    struct sigstate before, during, after;
    get_sigstate(&before);
    fq_options o = {.workers = 2, .timeout_ms = 0};
    fq_queue q = fqt_queue_opts(&o);
    get_sigstate(&during);
    assert_same_sigstate(&before, &during);
    run_crashy(q, 50);
    fq_job_options jo = {.timeout_ms = 50};
    fqt_gate_arg ga = fqt_gate_arg_of(&g, 1);
    FQT_OK(fq_submit(q, fqt_job_gate, &ga, sizeof ga, &jo, NULL));
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_refork(q));
    run_crashy(q, 20);
    get_sigstate(&during);
    assert_same_sigstate(&before, &during);
    fqt_submit_gate(q, &g, 1, 0);
    (void)fqt_gate_started(q, &g);
    FQT_OK(fq_cancel(q));
    FQT_OK(fq_queue_free(q));
    get_sigstate(&after);
    assert_same_sigstate(&before, &after);
    fqt_gate_free(&g);
}

/* ---- the worker's own state ------------------------------------------- */

struct wstate {
    pid_t pid, pgrp, ppid;
    int pdeathsig, subreaper;
    int handler[NSIG]; /* 0 default, 1 ignored, 2 a handler */
};

static int job_state(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    struct wstate s;
    memset(&s, 0, sizeof s);
    s.pid = getpid();
    s.pgrp = getpgrp();
    s.ppid = getppid();
    prctl(PR_GET_PDEATHSIG, &s.pdeathsig);
    prctl(PR_GET_CHILD_SUBREAPER, &s.subreaper);
    for (int i = 1; i < NSIG; i++) {
        struct sigaction sa;
        if (sigaction(i, NULL, &sa) != 0)
            continue;
        s.handler[i] = sa.sa_handler == SIG_DFL   ? 0
                       : sa.sa_handler == SIG_IGN ? 1
                                                  : 2;
    }
    return fq_reply(ctx, &s, sizeof s) == 0 ? 0 : 100;
}

static void on_signal(int sig)
{
    (void)sig;
}

static void test_worker_state(void **state)
{
    (void)state;
    struct sigaction h, ign, old[NSIG];
    memset(&h, 0, sizeof h);
    h.sa_handler = on_signal;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    const int caught[] = {SIGUSR1, SIGINT, SIGALRM, SIGWINCH};
    const int ignored[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    /* handlers first; SIGINT then switches to ignored */
    for (size_t i = 0; i < sizeof caught / sizeof *caught; i++)
        assert_int_equal(sigaction(caught[i], &h, &old[caught[i]]), 0);
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
        assert_int_equal(
            sigaction(ignored[i], &ign,
                      ignored[i] == SIGINT ? NULL : &old[ignored[i]]),
            0);
    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_submit(q, job_state, NULL, 0, NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(r.status, 0);
    struct wstate s;
    memcpy(&s, r.data, sizeof s);
    FQT_OK(fq_queue_free(q));
    for (size_t i = 0; i < sizeof caught / sizeof *caught; i++)
        assert_int_equal(sigaction(caught[i], &old[caught[i]], NULL), 0);
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
        if (ignored[i] != SIGINT)
            assert_int_equal(sigaction(ignored[i], &old[ignored[i]], NULL), 0);

    /* The library's own choices (see worker.c): caught signals and the
     * ignored TERM/INT/HUP/CHLD are back to their defaults in a worker.
     * The one handler is the library's: SIGRTMAX - 1, the worker's
     * parent-death signal, which ends the processes its jobs started. */
    for (int i = 1; i < NSIG; i++)
        if (s.handler[i] == 2 && i != SIGRTMAX - 1)
            print_error("worker has a handler for signal %d\n", i);
    for (int i = 1; i < NSIG; i++)
        if (i != SIGRTMAX - 1)
            assert_int_not_equal(s.handler[i], 2);
    assert_int_equal(s.handler[SIGRTMAX - 1], 2);
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
        assert_int_equal(s.handler[ignored[i]], 0);
    /* its own process group; dies with its parent */
    assert_int_equal(s.pgrp, s.pid);
    assert_int_not_equal(s.pgrp, getpgrp());
    assert_int_equal(s.ppid, getpid());
    assert_int_equal(s.pdeathsig, SIGRTMAX - 1);
    assert_int_equal(s.subreaper, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_no_fd_leaks),         FQT_TEST(test_no_zombies),
        FQT_TEST(test_host_reaps_children), FQT_TEST(test_parent_killed),
        FQT_TEST(test_no_sigpipe),          FQT_TEST(test_no_signal_handlers),
        FQT_TEST(test_worker_state),
    };
    return FQT_RUN(tests);
}
