/*
 * The fork server (fq_options.fork_server): workers forked by a
 * single-threaded helper. Jobs run and their outcomes (crashes with their
 * signal, exit statuses, time limits) are the same as with direct forks;
 * the workers' process tree keeps its promises (own process group, gone
 * with the parent, no descriptor of another queue); a host with threads
 * that hold a mutex and hammer malloc never hands a worker a held lock; a
 * helper that dies is a clear error, never a hang; every process reaped,
 * no descriptor left.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "fq_test.h"

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* Counts this process's descriptors whose link starts with prefix. */
static int count_links(const char *prefix)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = 0;
        n += strncmp(link, prefix, strlen(prefix)) == 0;
    }
    closedir(d);
    return n;
}

static fq_queue fs_queue(int workers)
{
    fq_options o = {0};
    o.workers = workers;
    o.fork_server = 1;
    return fqt_queue_opts(&o);
}

/* Ends the helper and checks that nothing is left (naming what is). */
static void fs_end(void)
{
    FQT_OK(fq_forkserver_stop());
    assert_int_equal(fq_forkserver_pid(), 0);
    pid_t kids[8];
    int n = fqp_children(getpid(), kids, 8, NULL);
    for (int i = 0; i < n && i < 8; i++) {
        char path[64], cmd[128] = "";
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)kids[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t k = read(fd, cmd, sizeof cmd - 1);
            cmd[k > 0 ? k : 0] = 0;
            close(fd);
        }
        char st = '?';
        fqp_proc_stat(kids[i], &st, NULL, NULL);
        print_error("left: pid %d state %c cmd %s\n", (int)kids[i], st, cmd);
    }
    fqt_assert_no_children();
}

/* Result: pid, parent pid, process group, sockets and memfds held. */
typedef struct whoami {
    pid_t pid, ppid, pgid;
    int sockets, memfds;
} whoami;

static int job_whoami(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    whoami w = {getpid(), getppid(), getpgid(0), count_links("socket:"),
                count_links("/memfd:")};
    return fq_reply(ctx, &w, sizeof w) == 0 ? 0 : 100;
}

static void test_jobs_run_in_children_of_the_helper(void **state)
{
    (void)state;
    int fds0 = count_fds();
    FQT_OK(fq_forkserver_start());
    FQT_OK(fq_forkserver_start()); /* idempotent */
    pid_t helper = fq_forkserver_pid();
    assert_true(helper > 0);
    /* A queue of direct workers beside it: its sockets must not reach the
     * helper's workers. */
    fq_queue direct = fqt_queue(2, 0);
    fq_queue q = fs_queue(2);
    assert_int_equal(fq_forkserver_pid(), helper);
    for (uint64_t i = 0; i < 2000; i++)
        fqt_submit_square(q, i);
    uint64_t sum = 0, want = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        sum += fqt_u64(&r);
        want += fqt_square(i);
    }
    assert_int_equal(sum, want);
    pid_t pids[4];
    assert_int_equal(fq_worker_pids(q, pids, 4), 2);
    for (int k = 0; k < 8; k++)
        FQT_OK(fq_submit(q, job_whoami, NULL, 0, NULL, NULL));
    for (int k = 0; k < 8; k++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
        whoami w;
        memcpy(&w, r.data, sizeof w);
        assert_true(w.pid == pids[0] || w.pid == pids[1]);
        assert_int_equal(w.ppid, helper); /* not the caller's children */
        assert_int_equal(w.pgid, w.pid);  /* a process group of its own */
        assert_int_equal(w.sockets, 1);   /* its own channel only */
        assert_int_equal(w.memfds, 0);    /* its page is mapped, not held */
    }
    FQT_OK(fq_queue_free(q));
    FQT_OK(fq_queue_free(direct));
    fs_end();
    assert_int_equal(count_fds(), fds0);
}

static void test_started_on_first_use(void **state)
{
    (void)state;
    assert_int_equal(fq_forkserver_pid(), 0);
    fq_queue q = fs_queue(1);
    assert_true(fq_forkserver_pid() > 0);
    fqt_submit_square(q, 7);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    FQT_OK(fq_finish(q));
    FQT_OK(fq_queue_free(q));
    fs_end();
}

static void test_invalid_with_threads(void **state)
{
    (void)state;
    fq_options o = {0};
    o.fork_server = 1;
    o.kind = FQ_WORKER_THREAD;
    fq_queue q = {0};
    FQT_EQ(fq_queue_new(&q, &o), FQ_EINVAL);
    assert_int_equal(fq_forkserver_pid(), 0);
}

enum { J_OK, J_SEGV, J_EXIT7, J_ABORT, J_SLEEP };

static int job_kind(fq_ctx *ctx, const void *arg, size_t len)
{
    int k;
    if (len != sizeof k)
        return fq_fail(ctx, 99, "bad argument");
    memcpy(&k, arg, sizeof k);
    switch (k) {
    case J_SEGV:
        raise(SIGSEGV);
        break;
    case J_EXIT7:
        _exit(7);
    case J_ABORT:
        abort();
    case J_SLEEP: {
        struct timespec ts = {30, 0};
        nanosleep(&ts, NULL);
        break;
    }
    }
    return fq_reply(ctx, &k, sizeof k) == 0 ? 0 : 100;
}

/* Crash attribution and time limits are those of direct forks: the exit
 * status travels back through the helper. */
static void test_outcomes_unchanged(void **state)
{
    (void)state;
    FQT_OK(fq_forkserver_start());
    fq_queue q = fs_queue(2);
    int kinds[] = {J_OK, J_SEGV, J_OK, J_EXIT7, J_OK, J_ABORT, J_SLEEP, J_OK};
    int n = (int)(sizeof kinds / sizeof kinds[0]);
    for (int i = 0; i < n; i++) {
        fq_job_options jo = {.id = (uint64_t)i, .flags = FQ_JOB_ID};
        jo.timeout_ms = kinds[i] == J_SLEEP ? 200 : 0;
        FQT_OK(fq_submit(q, job_kind, &kinds[i], sizeof kinds[i], &jo, NULL));
    }
    for (int i = 0; i < n; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        int k = kinds[r.id];
        if (k == J_OK) {
            assert_int_equal(r.status, 0);
            continue;
        }
        fqt_assert_msg(&r);
        if (k == J_SLEEP) {
            assert_int_equal(r.status, FQ_ETIMEDOUT);
            continue;
        }
        assert_int_equal(r.status, FQ_ECRASHED);
        if (k == J_SEGV || k == J_ABORT) {
            assert_int_equal(r.signo, k == J_SEGV ? SIGSEGV : SIGABRT);
            assert_int_equal(r.exit_status, -1);
        } else {
            assert_int_equal(r.signo, 0);
            assert_int_equal(r.exit_status, 7);
        }
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 3);
    assert_int_equal(st.timedout, 1);
    assert_true(st.respawns >= 4);
    /* fq_refork(), fq_cancel() with a job running, and free. */
    FQT_OK(fq_refork(q));
    int sl = J_SLEEP;
    FQT_OK(fq_submit(q, job_kind, &sl, sizeof sl, NULL, NULL));
    fqt_submit_square(q, 3);
    FQT_OK(fq_cancel(q));
    for (int i = 0; i < 2; i++) {
        fq_result r;
        assert_int_equal(fq_take(q, &r), 1);
        assert_true(r.status == FQ_ECANCELED || r.status == 0);
    }
    FQT_OK(fq_queue_free(q));
    fs_end();
}

/* A host that ignores SIGCHLD loses its direct children's exit statuses;
 * the helper does not ignore it, so a crash still names its signal. */
static void test_sigchld_ignored_keeps_statuses(void **state)
{
    (void)state;
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
    FQT_OK(fq_forkserver_start());
    fq_queue q = fs_queue(1);
    int k = J_SEGV;
    FQT_OK(fq_submit(q, job_kind, &k, sizeof k, NULL, NULL));
    fqt_submit_square(q, 4);
    for (int i = 0; i < 2; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        if (r.status == 0) {
            assert_int_equal(fqt_u64(&r), fqt_square(4));
            continue;
        }
        assert_int_equal(r.status, FQ_ECRASHED);
        assert_int_equal(r.signo, SIGSEGV);
    }
    FQT_OK(fq_queue_free(q));
    FQT_OK(fq_forkserver_stop()); /* the helper was reaped by the kernel */
    assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
    fs_end();
}

/* ---- A host with threads ---------------------------------------------- */

static pthread_mutex_t host_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int host_stop;

/* Holds host_mu most of the time: a direct fork would very likely copy it
 * locked, and a job that takes it would wait forever. */
static void *holder(void *arg)
{
    (void)arg;
    while (!atomic_load(&host_stop)) {
        pthread_mutex_lock(&host_mu);
        struct timespec ts = {0, 300 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_unlock(&host_mu);
        sched_yield();
    }
    return NULL;
}

static void *hammer(void *arg)
{
    unsigned x = (unsigned)(uintptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load(&host_stop)) {
        x = x * 1103515245u + 12345u;
        unsigned k = (x >> 8) % 64;
        free(keep[k]);
        keep[k] = malloc(16 + (x >> 16) % 8192);
        if (keep[k])
            memset(keep[k], 1, 16);
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return NULL;
}

/* Takes the host's mutex and allocates: deadlocks in a worker forked while
 * another thread held either. */
static int job_locks(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    pthread_mutex_lock(&host_mu);
    void *p = malloc(1000);
    pthread_mutex_unlock(&host_mu);
    free(p);
    uint64_t v = 1;
    return fq_reply(ctx, &v, sizeof v) == 0 ? 0 : 100;
}

static void test_threaded_host_never_deadlocks(void **state)
{
    (void)state;
    /* FQT_FS_DIRECT=1 runs the same with direct forks, to see the hazard
     * (the jobs then hit their time limit). */
    int direct = getenv("FQT_FS_DIRECT") != NULL;
    if (!direct)
        FQT_OK(fq_forkserver_start()); /* before the threads */
    pthread_t th[3];
    atomic_store(&host_stop, 0);
    assert_int_equal(pthread_create(&th[0], NULL, holder, NULL), 0);
    assert_int_equal(pthread_create(&th[1], NULL, hammer, (void *)1), 0);
    assert_int_equal(pthread_create(&th[2], NULL, hammer, (void *)2), 0);
    /* Fewer rounds in the slow builds (valgrind preloads its own lib). */
    const char *pre = getenv("LD_PRELOAD");
    int slow = FQT_SANITIZE || (pre && strstr(pre, "vgpreload"));
    int rounds = slow ? 10 : 30, bad = 0;
    for (int round = 0; round < rounds; round++) {
        fq_options o = {0};
        o.workers = 2;
        o.fork_server = !direct;
        o.timeout_ms = 5000;
        fq_queue q = fqt_queue_opts(&o);
        for (int i = 0; i < 20; i++)
            FQT_OK(fq_submit(q, job_locks, NULL, 0, NULL, NULL));
        if (round % 3 == 0)
            FQT_OK(fq_refork(q)); /* new workers meanwhile */
        for (int i = 0; i < 20; i++) {
            fq_result r;
            assert_int_equal(fqt_take_wait(q, &r, 60000), 1);
            bad += r.status != 0;
        }
        FQT_OK(fq_queue_free(q));
        if (direct && bad)
            break;
    }
    atomic_store(&host_stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    if (bad)
        print_error("%d jobs did not get their result\n", bad);
    assert_int_equal(bad, 0);
    fs_end();
}

/* ---- The helper dies -------------------------------------------------- */

static void test_helper_killed_is_a_clear_error(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g); /* before the helper: its workers inherit the pipes */
    FQT_OK(fq_forkserver_start());
    pid_t helper = fq_forkserver_pid();
    fq_queue q = fs_queue(2);
    fqt_submit_gate(q, &g, 1, 0);
    fqt_submit_gate(q, &g, 2, 0);
    fqt_gate_started(q, &g);
    fqt_gate_started(q, &g);
    for (uint64_t i = 0; i < 10; i++)
        fqt_submit_square(q, i);
    int64_t t0 = fqp_now_ms();
    assert_int_equal(kill(helper, SIGKILL), 0);
    /* Every job gets an outcome, soon: the running ones crashed with their
     * workers, the others could not be started anywhere. */
    int crashed = 0, nofork = 0;
    for (int i = 0; i < 12; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
        fqt_assert_msg(&r);
        if (r.status == FQ_ECRASHED) {
            crashed++;
            assert_non_null(strstr((const char *)r.data, "fork server"));
        } else {
            assert_int_equal(r.status, FQ_EFORK);
            assert_non_null(strstr((const char *)r.data, "fork server"));
            nofork++;
        }
    }
    assert_true(fqp_now_ms() - t0 < 8000);
    assert_int_equal(crashed, 2);
    assert_int_equal(fqt_count_children(NULL), 0); /* the helper reaped */
    assert_int_equal(nofork, 10);
    assert_int_equal(fq_forkserver_pid(), 0);
    /* The next calls say so at once. */
    fqt_submit_square(q, 1);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.status, FQ_EFORK);
    fq_queue q2 = {0};
    fq_options o = {0};
    o.fork_server = 1;
    o.workers = 1;
    FQT_EQ(fq_queue_new(&q2, &o), FQ_EFORK);
    FQT_EQ(fq_refork(q), FQ_EFORK);
    /* A new helper, on the program's request: the same queue works again. */
    FQT_OK(fq_forkserver_start());
    assert_true(fq_forkserver_pid() > 0);
    assert_int_not_equal(fq_forkserver_pid(), helper);
    FQT_OK(fq_refork(q));
    fqt_submit_square(q, 5);
    assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
    assert_int_equal(fqt_u64(&r), fqt_square(5));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
    fs_end();
}

/* A stopped helper (SIGSTOP) does not hang the caller either: it is taken
 * for dead after its reply deadline. */
/* A helper that dies while nothing uses it: fq_forkserver_pid() notices,
 * reaps it, and says 0. */
static void test_idle_helper_death_noticed(void **state)
{
    (void)state;
    FQT_OK(fq_forkserver_start());
    pid_t helper = fq_forkserver_pid();
    assert_int_equal(kill(helper, SIGKILL), 0);
    FQT_WAIT_UNTIL(fq_forkserver_pid() == 0, 5000);
    assert_int_equal(fq_forkserver_pid(), 0);
    fqt_assert_no_children();
    fq_options o = {0};
    o.fork_server = 1;
    fq_queue q = {0};
    FQT_EQ(fq_queue_new(&q, &o), FQ_EFORK); /* not restarted behind us */
    fs_end();
}

static void test_helper_stopped_does_not_hang(void **state)
{
    (void)state;
    FQT_OK(fq_forkserver_start());
    pid_t helper = fq_forkserver_pid();
    fq_queue q = fs_queue(1);
    assert_int_equal(kill(helper, SIGSTOP), 0);
    int64_t t0 = fqp_now_ms();
    /* The new worker cannot be forked: FQ_EFORK after the reply deadline
     * (10 s), the helper killed and reaped. */
    FQT_EQ(fq_refork(q), FQ_EFORK);
    assert_true(fqp_now_ms() - t0 < 20000);
    assert_int_equal(fq_forkserver_pid(), 0);
    FQT_OK(fq_queue_free(q));
    fs_end();
}

/* ---- The parent dies --------------------------------------------------- */

typedef struct tree_pids {
    pid_t worker, grandchild;
} tree_pids;

/* Starts a process in a session of its own that would sleep for a minute,
 * reports both pids, and blocks. */
static int job_tree(fq_ctx *ctx, const void *arg, size_t len)
{
    int fd;
    (void)len;
    memcpy(&fd, arg, sizeof fd);
    pid_t c = fork();
    if (c == 0) {
        setsid();
        struct timespec ts = {60, 0};
        nanosleep(&ts, NULL);
        _exit(0);
    }
    tree_pids t = {getpid(), c};
    fqt_write_all(fd, &t, sizeof t);
    struct timespec ts = {60, 0};
    nanosleep(&ts, NULL);
    return fq_reply(ctx, NULL, 0);
}

static void test_parent_death_ends_everything(void **state)
{
    (void)state;
    int p[2];
    fqt_pipe(p);
    pid_t host = fork();
    assert_true(host >= 0);
    if (host == 0) {
        /* The host: a helper, a queue, a job that starts a process. */
        close(p[0]);
        if (fq_forkserver_start() != 0)
            _exit(1);
        pid_t h = fq_forkserver_pid();
        fqt_write_all(p[1], &h, sizeof h);
        fq_options o = {0};
        o.workers = 1;
        o.fork_server = 1;
        fq_queue q = {0};
        if (fq_queue_new(&q, &o) != 0)
            _exit(2);
        fq_submit(q, job_tree, &p[1], sizeof p[1], NULL, NULL);
        fq_wait(q, -1);
        _exit(3);
    }
    close(p[1]);
    pid_t helper = 0;
    tree_pids t = {0, 0};
    assert_int_equal(fqt_read_all(p[0], &helper, sizeof helper), 0);
    assert_int_equal(fqt_read_all(p[0], &t, sizeof t), 0);
    close(p[0]);
    unsigned long long hs = fqt_proc_start(helper),
                       ws = fqt_proc_start(t.worker),
                       gs = fqt_proc_start(t.grandchild);
    assert_true(hs && ws && gs);
    assert_int_equal(kill(host, SIGKILL), 0);
    assert_int_equal(fqt_wait_child(host), 1000 + SIGKILL);
    assert_true(fqt_wait_gone(helper, hs, 3000));
    assert_true(fqt_wait_gone(t.worker, ws, 3000));
    assert_true(fqt_wait_gone(t.grandchild, gs, 3000));
    fqt_assert_no_children();
}

/* ---- Recycling through the helper -------------------------------------- */

static void test_max_jobs_through_the_helper(void **state)
{
    (void)state;
    FQT_OK(fq_forkserver_start());
    fq_options o = {0};
    o.workers = 1;
    o.fork_server = 1;
    o.max_jobs_per_worker = 5;
    fq_queue q = fqt_queue_opts(&o);
    for (uint64_t i = 0; i < 23; i++)
        fqt_submit_square(q, i);
    for (int i = 0; i < 23; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(fqt_u64(&r), fqt_square(r.id));
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.recycled, 4);
    FQT_OK(fq_queue_free(q));
    fs_end();
}

/* max_rss through the helper: the status page (a memfd) carries the limit
 * and the flag; each job runs once (runs counted in memory mapped before
 * the helper started, so its workers share it). */
static _Atomic unsigned *runs;

static int job_count_run(fq_ctx *ctx, const void *arg, size_t len)
{
    uint32_t i;
    if (len != sizeof i)
        return fq_fail(ctx, 99, "bad argument");
    memcpy(&i, arg, sizeof i);
    atomic_fetch_add(&runs[i], 1);
    return fq_reply(ctx, &i, sizeof i) == 0 ? 0 : 100;
}

static void test_max_rss_through_the_helper(void **state)
{
    (void)state;
    enum { N = 60 };
    runs = fqt_runs_new(N);
    FQT_OK(fq_forkserver_start());
    fq_options o = {0};
    o.workers = 2;
    o.fork_server = 1;
    o.max_rss = 1; /* every worker is over it after its first job */
    fq_queue q = fqt_queue_opts(&o);
    for (uint32_t i = 0; i < N; i++) {
        fq_job_options jo = {.id = i, .flags = FQ_JOB_ID};
        FQT_OK(fq_submit(q, job_count_run, &i, sizeof i, &jo, NULL));
    }
    for (int i = 0; i < N; i++) {
        fq_result r;
        assert_int_equal(fqt_take_wait(q, &r, 30000), 1);
        assert_int_equal(r.status, 0);
    }
    fqt_assert_ran_once(runs, N);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_true(st.recycled >= 2);
    FQT_OK(fq_queue_free(q));
    fs_end();
    fqt_runs_free(runs, N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_jobs_run_in_children_of_the_helper),
        FQT_TEST(test_started_on_first_use),
        FQT_TEST(test_invalid_with_threads),
        FQT_TEST(test_outcomes_unchanged),
        FQT_TEST(test_sigchld_ignored_keeps_statuses),
        FQT_TEST(test_helper_killed_is_a_clear_error),
        FQT_TEST(test_idle_helper_death_noticed),
        FQT_TEST(test_helper_stopped_does_not_hang),
        FQT_TEST(test_parent_death_ends_everything),
        FQT_TEST(test_max_jobs_through_the_helper),
        FQT_TEST(test_max_rss_through_the_helper),
        FQT_TEST(test_threaded_host_never_deadlocks),
    };
    return FQT_RUN(tests);
}
