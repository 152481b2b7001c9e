/*
 * Host programs with threads. The core starts no threads of its own; these
 * tests check what the header promises to threaded hosts: workers can be
 * forked while other threads allocate and lock (glibc keeps malloc usable in
 * the child); different queues can be driven from different threads at the
 * same time; and a queue whose creating thread has exited (its workers die
 * with it, PR_SET_PDEATHSIG) still gives every job one outcome and recovers.
 *
 * Built twice: normally (and under ASan in the sanitizer build) and with
 * TSan, against a TSan-instrumented copy of the library, which checks the
 * library's process-wide state (the handle table) for data races.
 *
 * cmocka asserts only in the main thread: threads record, main asserts.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

#include "forkqueue.h"
#include "rel_util.h"

#if defined(FQ_TEST_TSAN)
#define SCALE 4 /* TSan runs everything several times slower */
#elif defined(FQ_TEST_SANITIZE)
#define SCALE 2
#else
#define SCALE 1
#endif

/* arg: int i. Every 50th job dies; the others allocate, format and reply
 * "i:<i*7>". */
static int work_job(fq_ctx *ctx, const void *arg, size_t len)
{
    int i;
    if (len != sizeof i)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(&i, arg, sizeof i);
    if (i % 50 == 49)
        raise(SIGKILL);
    char *buf = malloc(64 + (size_t)(i % 1000));
    if (!buf)
        return fq_fail(ctx, 2, "malloc failed");
    int n = snprintf(buf, 64, "%d:%d", i, i * 7);
    int rc = fq_reply(ctx, buf, (size_t)n);
    free(buf);
    return rc;
}

/* Runs n work jobs on q; returns the number of wrong outcomes. */
static int run_work(fq_queue q, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        fq_job_options jo = {0};
        jo.id = (uint64_t)i;
        jo.flags = FQ_JOB_ID;
        if (fq_submit(q, work_job, &i, sizeof i, &jo, NULL) != 0)
            return n;
    }
    if (fq_wait(q, 120000) != 0)
        return n;
    fq_result r;
    int seen = 0;
    while (fq_take(q, &r) == 1) {
        int i = (int)r.id;
        char want[64];
        seen++;
        int wrong;
        if (i % 50 == 49) {
            wrong = r.status != FQ_ECRASHED || r.signo != SIGKILL;
        } else {
            int m = snprintf(want, sizeof want, "%d:%d", i, i * 7);
            wrong = r.status != 0 || r.len != (size_t)m ||
                    memcmp(r.data, want, (size_t)m) != 0;
        }
        /* stderr from a thread is fine; the assertion is in main. */
        if (wrong && bad++ < 3)
            fprintf(stderr, "    job %d: %s signo %d exit %d: %.*s\n", i,
                    fq_err_name(r.status), r.signo, r.exit_status, (int)r.len,
                    r.status ? (const char *)r.data : "");
    }
    return bad + (n - seen);
}

/* ---- Busy host threads ------------------------------------------------- */

static atomic_int stop_churn;
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static long host_counter;

static void *churn(void *arg)
{
    (void)arg;
    unsigned x = 1;
    while (!atomic_load(&stop_churn)) {
        x = x * 1103515245u + 12345u;
        void *p = malloc(16 + x % 4096);
        pthread_mutex_lock(&host_lock);
        host_counter++;
        pthread_mutex_unlock(&host_lock);
        char s[32];
        snprintf(s, sizeof s, "%u", x);
        free(p);
    }
    return NULL;
}

static void test_busy_host_threads(void **state)
{
    (void)state;
    pthread_t t[3];
    atomic_store(&stop_churn, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, NULL), 0);
    fq_options o = {0};
    o.workers = 2;
    fq_queue q = {0};
    int rc = fq_queue_new(&q, &o);
    /* Every 50th job kills its worker, so workers are forked again and
     * again while the other threads hold malloc's and our locks. */
    int bad = rc == 0 ? run_work(q, 3000 / SCALE) : -1;
    int bad2 = rc == 0 ? run_work(q, 500 / SCALE) : -1;
    atomic_store(&stop_churn, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    /* Freed before asserting, so a failure leaves no workers behind. */
    int freed = rc == 0 ? fq_queue_free(q) : 0;
    assert_int_equal(rc, 0);
    assert_int_equal(bad, 0);
    assert_int_equal(bad2, 0);
    assert_int_equal(freed, 0);
}

/* ---- One queue per thread ---------------------------------------------- */

struct per_thread {
    int rc, bad, freed;
};

static void *own_queue(void *arg)
{
    struct per_thread *pt = arg;
    fq_options o = {0};
    o.workers = 2;
    fq_queue q = {0};
    pt->rc = fq_queue_new(&q, &o);
    if (pt->rc != 0)
        return NULL;
    pt->bad = run_work(q, 1500 / SCALE);
    pt->freed = fq_queue_free(q);
    return NULL;
}

static void test_queue_per_thread(void **state)
{
    (void)state;
    pthread_t t[3];
    struct per_thread pt[3];
    memset(pt, 0, sizeof pt);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, own_queue, &pt[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pt[i].rc, 0);
        assert_int_equal(pt[i].bad, 0);
        assert_int_equal(pt[i].freed, 0);
    }
    pid_t kids[16];
    int z = 0, nk = fqp_children(getpid(), kids, 16, &z);
    for (int i = 0; i < nk && i < 16; i++) {
        char st;
        pid_t pp;
        if (fqp_proc_stat(kids[i], &st, &pp, NULL) == 0)
            print_error("child %d left, state %c\n", (int)kids[i], st);
    }
    assert_int_equal(nk, 0);
}

/* ---- Queue outliving its creating thread -------------------------------- */

static void *make_queue(void *arg)
{
    fq_options o = {0};
    o.workers = 2;
    fq_queue *q = arg;
    if (fq_queue_new(q, &o) != 0)
        q->id = 0;
    return NULL;
}

static int echo_job(fq_ctx *ctx, const void *arg, size_t len)
{
    return fq_reply(ctx, arg, len);
}

static void test_queue_outlives_creator_thread(void **state)
{
    (void)state;
    fq_queue q = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, make_queue, &q), 0);
    pthread_join(t, NULL);
    assert_int_not_equal(q.id, 0);
    /* Its workers die with the thread (documented); jobs sent to them
     * before the core notices are re-sent or reported, never lost. */
    int ok = 0, crashed = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20; i++)
            assert_int_equal(fq_submit(q, echo_job, &i, sizeof i, NULL, NULL),
                             0);
        assert_int_equal(fq_wait(q, 30000), 0);
        fq_result r;
        int n = 0;
        while (fq_take(q, &r) == 1) {
            n++;
            if (r.status == 0)
                ok++;
            else if (r.status == FQ_ECRASHED)
                crashed++;
            else
                fail_msg("unexpected outcome %s", fq_err_name(r.status));
        }
        assert_int_equal(n, 20);
    }
    print_message("    %d results, %d jobs lost with the old workers\n", ok,
                  crashed);
    /* The replacements were forked from this thread: the second round ran
     * entirely on them. */
    assert_true(ok >= 20);
    assert_int_equal(fq_queue_free(q), 0);
}

/* ---- Workers hold no other queue's descriptors --------------------------- */

/* Counts the sockets and eventfds open in this process. */
static int count_sockets(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char path[300], link[64];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l > 0) {
            link[l] = 0;
            n += strncmp(link, "socket:", 7) == 0 ||
                 strcmp(link, "anon_inode:[eventfd]") == 0;
        }
    }
    closedir(d);
    return n;
}

/* Replies with the number of sockets and eventfds (queues' wake-up
 * descriptors) open in the worker: its own channel only, whatever other
 * threads were creating or destroying meanwhile. */
static int count_sockets_job(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    int n = count_sockets();
    if (n < 0)
        return fq_fail(ctx, 1, "opendir");
    return fq_reply(ctx, &n, sizeof n);
}

struct churn_fds {
    int rounds, bad, errors;
};

static void *churn_queues(void *arg)
{
    struct churn_fds *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        fq_options o = {0};
        o.workers = 1 + i % 2;
        fq_queue q = {0};
        if (fq_queue_new(&q, &o) != 0) {
            c->errors++;
            continue;
        }
        fq_result r;
        int rs = fq_submit(q, count_sockets_job, NULL, 0, NULL, NULL), rw = 0,
            rt = 0;
        if (rs == 0)
            rw = fq_wait(q, 60000);
        if (rs == 0 && rw == 0)
            rt = fq_take(q, &r);
        if (rs != 0 || rw != 0 || rt != 1 || r.status != 0) {
            /* Which step, for the log of a failed run. */
            print_message("    queue round %d: submit %d, wait %d, take %d, "
                          "status %s: %s\n",
                          i, rs, rw, rt, rt == 1 ? fq_err_name(r.status) : "-",
                          rt == 1 && r.data ? (const char *)r.data : "");
            c->errors++;
        } else if (*(const int *)r.data != 1)
            c->bad++;
        fq_queue_free(q);
    }
    return NULL;
}

/* Runs four churning threads (kinds[i] for thread i) of `rounds` rounds
 * each; asserts no error and no child holding a foreign descriptor. */
static void churn_and_check(void *(*const kinds[4])(void *), int rounds,
                            const char *what)
{
    pthread_t t[4];
    struct churn_fds c[4];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 4; i++) {
        c[i].rounds = rounds;
        assert_int_equal(pthread_create(&t[i], NULL, kinds[i], &c[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    int bad = 0, errors = 0;
    for (int i = 0; i < 4; i++) {
        bad += c[i].bad;
        errors += c[i].errors;
    }
    print_message("    %d of %d %s held a foreign socket\n", bad, 4 * rounds,
                  what);
    assert_int_equal(errors, 0);
    assert_int_equal(bad, 0);
}

static void test_no_foreign_descriptors(void **state)
{
    (void)state;
    void *(*const kinds[4])(void *) = {churn_queues, churn_queues, churn_queues,
                                       churn_queues};
    churn_and_check(kinds, 120 / SCALE, "workers");
}

/* A channel child: sends the number of sockets and eventfds it holds (its
 * own end of the channel only, whatever other threads were creating). */
static int count_sockets_child(fq_channel ch, void *arg)
{
    (void)arg;
    int n = count_sockets();
    return fq_channel_send(ch, &n, sizeof n) == 0 ? 0 : 1;
}

static void *churn_channels(void *arg)
{
    struct churn_fds *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        fq_channel ch;
        fq_msg m = {0};
        int status = -1;
        int rs = fq_channel_start(&ch, count_sockets_child, NULL, NULL);
        if (rs != 0) {
            print_message("    channel round %d: start %d\n", i, rs);
            c->errors++;
            continue;
        }
        int rr = fq_channel_recv(ch, &m, 60000), rw = 0;
        rw = fq_channel_wait(ch, &status, 60000);
        if (rr != 1 || m.len != sizeof(int) || rw != 0 || status != 0) {
            /* Which step, for the log of a failed run. */
            print_message("    channel round %d: recv %d (%zu bytes), wait %d, "
                          "status %d\n",
                          i, rr, (size_t)m.len, rw, status);
            c->errors++;
        } else if (*(const int *)m.data != 1)
            c->bad++;
        fq_msg_free(&m);
        fq_channel_free(ch);
    }
    return NULL;
}

/* Queues' workers and public channels' children forked from different
 * threads at once: neither holds the other's descriptors. */
static void test_no_foreign_descriptors_with_channels(void **state)
{
    (void)state;
    void *(*const kinds[4])(void *) = {churn_queues, churn_channels,
                                       churn_queues, churn_channels};
    churn_and_check(kinds, 100 / SCALE, "workers and channel children");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_foreign_descriptors),
        cmocka_unit_test(test_no_foreign_descriptors_with_channels),
        cmocka_unit_test(test_busy_host_threads),
        cmocka_unit_test(test_queue_per_thread),
        cmocka_unit_test(test_queue_outlives_creator_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
