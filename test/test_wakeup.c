/*
 * fq_wakeup(): waking the thread that waits on a queue, from another thread.
 *
 * A gated job keeps the queue busy, so that fq_poll() and fq_wait() would
 * block for their whole timeout unless woken. Threads only record; the main
 * thread asserts. Also built with TSan (test_wakeup_tsan), which checks the
 * wake-up against a concurrent fq_queue_free().
 */
#include "fq_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#if defined(FQ_TEST_TSAN)
#define SCALE 4
#else
#define SCALE 1
#endif

/* Long enough that returning before it can only be a wake-up. */
#define LONG_MS 20000

/* A queue with one worker busy in a gated job until the gate opens. */
static fq_queue busy_queue(fqt_gate *g)
{
    fqt_gate_new(g);
    fq_queue q = fqt_queue(1, 0);
    fqt_submit_gate(q, g, 7, 0);
    fqt_gate_started(q, g);
    return q;
}

static void release(fq_queue q, fqt_gate *g)
{
    fqt_gate_open(g, 1);
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(g);
}

/* Sent before the wait: the wait returns at once, and only that one. */
static void test_wakeup_pending(void **state)
{
    (void)state;
    fqt_gate g;
    fq_queue q = busy_queue(&g);

    FQT_OK(fq_wakeup(q));
    FQT_OK(fq_wakeup(q)); /* several count as one */
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_poll(q, LONG_MS), 0);
    assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
    /* Consumed: the next wait runs to its timeout. */
    t0 = fqp_now_ms();
    FQT_EQ(fq_poll(q, 100), 0);
    assert_true(fqp_now_ms() - t0 >= 95);
    release(q, &g);
}

/* Non-blocking calls leave it pending for the wait that follows. */
static void test_wakeup_kept_by_nonblocking(void **state)
{
    (void)state;
    fqt_gate g;
    fq_queue q = busy_queue(&g);
    fq_result r;

    FQT_OK(fq_wakeup(q));
    FQT_EQ(fq_take(q, &r), 0);
    FQT_EQ(fq_poll(q, 0), 0);
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_wait(q, LONG_MS), FQ_EINTR);
    assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
    release(q, &g);
}

/* Woken with every job finished: fq_wait() reports success. */
static void test_wakeup_wait_done(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(1, 0);
    fqt_submit_square(q, 3);
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_wakeup(q));
    FQT_OK(fq_wait(q, LONG_MS));
    fq_result r;
    FQT_EQ(fq_take(q, &r), 1);
    assert_int_equal(fqt_u64(&r), fqt_square(3));
    FQT_OK(fq_queue_free(q));
}

struct waker {
    fq_queue q;
    pid_t main_tid;
    int rc;
    int saw_sleeping;
};

/* Waits until the main thread is blocked (in the poll under test), then
 * wakes the queue. */
static void *waker_main(void *arg)
{
    struct waker *wk = arg;
    wk->saw_sleeping = fqt_await_sleeping(wk->main_tid);
    wk->rc = fq_wakeup(wk->q);
    return NULL;
}

/* A wait blocked in another thread returns early, both kinds. */
static void test_wakeup_from_thread(void **state)
{
    (void)state;
    fqt_gate g;
    fq_queue q = busy_queue(&g);

    for (int kind = 0; kind < 2; kind++) {
        struct waker wk = {q, fqt_tid(), -100, 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, waker_main, &wk), 0);
        int64_t t0 = fqp_now_ms();
        int rc = kind == 0 ? fq_poll(q, LONG_MS) : fq_wait(q, LONG_MS);
        int64_t took = fqp_now_ms() - t0;
        pthread_join(t, NULL);
        FQT_EQ(rc, kind == 0 ? 0 : FQ_EINTR);
        FQT_OK(wk.rc);
        assert_true(wk.saw_sleeping);
        assert_true(took < LONG_MS / 2);
    }
    release(q, &g);
}

/* The pattern fq_wakeup() is for: an owner thread loops on poll and take,
 * other threads hand it work through a locked list and wake it. Every job
 * handed over gets its outcome; the owner never waits out a timeout. */
#define PRODUCERS 3
#define PER_PRODUCER (200 / SCALE)

struct handoff {
    pthread_mutex_t lock;
    pthread_cond_t more; /* for the owner when it has no job out */
    uint64_t todo[PRODUCERS * PER_PRODUCER];
    int ntodo;
    int producers_done;
    fq_queue q;
    int wake_errors;
};

static void *producer_main(void *arg)
{
    struct handoff *h = arg;
    static atomic_int next;
    int base = atomic_fetch_add(&next, 1) % PRODUCERS;
    for (int i = 0; i < PER_PRODUCER; i++) {
        pthread_mutex_lock(&h->lock);
        h->todo[h->ntodo++] = (uint64_t)(base * PER_PRODUCER + i);
        pthread_cond_signal(&h->more);
        pthread_mutex_unlock(&h->lock);
        if (fq_wakeup(h->q) != 0) {
            pthread_mutex_lock(&h->lock);
            h->wake_errors++;
            pthread_mutex_unlock(&h->lock);
        }
    }
    pthread_mutex_lock(&h->lock);
    h->producers_done++;
    pthread_cond_signal(&h->more);
    pthread_mutex_unlock(&h->lock);
    fq_wakeup(h->q);
    return NULL;
}

static void test_wakeup_handoff(void **state)
{
    (void)state;
    enum { N = PRODUCERS * PER_PRODUCER };
    static struct handoff h;
    static unsigned char seen[N];
    memset(&h, 0, sizeof h);
    memset(seen, 0, sizeof seen);
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.more, NULL);
    h.q = fqt_queue(2, 0);

    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, producer_main, &h), 0);

    int submitted = 0, taken = 0, done = 0, long_waits = 0;
    while (!done || taken < submitted) {
        uint64_t batch[N];
        int nb;
        pthread_mutex_lock(&h.lock);
        nb = h.ntodo;
        memcpy(batch, h.todo, (size_t)nb * sizeof *batch);
        h.ntodo = 0;
        done = h.producers_done == PRODUCERS;
        pthread_mutex_unlock(&h.lock);
        for (int i = 0; i < nb; i++) {
            fq_job_options jo = {0};
            jo.id = batch[i];
            jo.flags = FQ_JOB_ID;
            FQT_OK(fq_submit(h.q, fqt_job_square, &batch[i], sizeof batch[i],
                             &jo, NULL));
            submitted++;
        }
        fq_result r;
        int rc;
        while ((rc = fq_take(h.q, &r)) == 1) {
            assert_true(r.id < N);
            assert_int_equal(fqt_u64(&r), fqt_square(r.id));
            assert_int_equal(seen[r.id], 0);
            seen[r.id] = 1;
            taken++;
        }
        assert_true(rc == 0);
        if (done && taken == submitted)
            break;
        /* With jobs out, fq_poll() blocks until an outcome or a wake-up.
         * With none it would return at once: wait for a producer. */
        int64_t t0 = fqp_now_ms();
        if (taken < submitted) {
            rc = fq_poll(h.q, LONG_MS);
            assert_true(rc >= 0);
        } else {
            pthread_mutex_lock(&h.lock);
            while (h.ntodo == 0 && h.producers_done < PRODUCERS)
                pthread_cond_wait(&h.more, &h.lock);
            pthread_mutex_unlock(&h.lock);
        }
        if (fqp_now_ms() - t0 >= LONG_MS / 2)
            long_waits++;
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(h.wake_errors, 0);
    assert_int_equal(long_waits, 0);
    assert_int_equal(taken, N);
    FQT_OK(fq_queue_free(h.q));
    pthread_cond_destroy(&h.more);
    pthread_mutex_destroy(&h.lock);
}

/* Wake-ups racing with fq_queue_free(): each returns 0 or FQ_ECLOSED,
 * never touches a closed descriptor (TSan and the errno check see it). */
struct racer {
    fq_queue q;
    atomic_int stop;
    int bad;
    long ok;
    atomic_long closed;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(&r->stop)) {
        int rc = fq_wakeup(r->q);
        if (rc == 0)
            r->ok++;
        else if (rc == FQ_ECLOSED)
            atomic_fetch_add(&r->closed, 1);
        else
            r->bad++;
        if (rc == FQ_ECLOSED)
            break;
    }
    return NULL;
}

static void test_wakeup_races_free(void **state)
{
    (void)state;
    for (int round = 0; round < 20 / SCALE; round++) {
        fq_queue q = fqt_queue(1, 0);
        struct racer r;
        memset(&r, 0, sizeof r);
        r.q = q;
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, racer_main, &r), 0);
        fqt_submit_square(q, 2);
        int rc;
        while ((rc = fq_wait(q, 30000)) == FQ_EINTR)
            ; /* woken by the racer */
        FQT_OK(rc);
        FQT_OK(fq_queue_free(q));
        /* Let the racer see the freed handle, or stop it. */
        int64_t end = fqp_now_ms() + 5000;
        while (!atomic_load(&r.closed) && fqp_now_ms() < end)
            sched_yield();
        atomic_store(&r.stop, 1);
        pthread_join(t, NULL);
        assert_int_equal(r.bad, 0);
        assert_int_equal(atomic_load(&r.closed), 1);
    }
}

/* From a signal handler: no lock is taken, so it works even while the
 * interrupted thread is inside the library (here: in the wait). */
static fq_queue sig_q;
static volatile sig_atomic_t sig_rc = -100;

static void on_usr1(int signo)
{
    (void)signo;
    sig_rc = fq_wakeup(sig_q);
}

struct sender {
    pthread_t target;
    pid_t target_tid;
    int saw_sleeping;
};

static void *sender_main(void *arg)
{
    struct sender *sd = arg;
    sd->saw_sleeping = fqt_await_sleeping(sd->target_tid);
    pthread_kill(sd->target, SIGUSR1);
    return NULL;
}

static void test_wakeup_from_signal_handler(void **state)
{
    (void)state;
    fqt_gate g;
    fq_queue q = busy_queue(&g);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    sig_q = q;
    sig_rc = -100;
    struct sender sd = {pthread_self(), fqt_tid(), 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender_main, &sd), 0);
    int64_t t0 = fqp_now_ms();
    int rc = fq_poll(q, LONG_MS); /* resumes after EINTR, then sees it */
    int64_t took = fqp_now_ms() - t0;
    pthread_join(t, NULL);
    sigaction(SIGUSR1, &old, NULL);
    FQT_EQ(rc, 0);
    assert_int_equal(sig_rc, 0);
    assert_true(sd.saw_sleeping);
    assert_true(took < LONG_MS / 2);
    release(q, &g);
}

/* More live queues than the wake-up table has slots: the others are found
 * through the registry; every one can be woken, and freed queues answer
 * FQ_ECLOSED either way. */
static void test_wakeup_many_queues(void **state)
{
    (void)state;
    enum { N = 300 };
    static fq_queue qs[N];
    fqt_gate g;
    fqt_gate_new(&g); /* before the queues: their workers inherit it */
    fq_options o = {0};
    o.workers = 1;
    for (int i = 0; i < N; i++)
        FQT_OK(fq_queue_new(&qs[i], &o));
    for (int i = 0; i < N; i++)
        FQT_OK(fq_wakeup(qs[i]));
    /* The last ones are past the table: woken through the registry. */
    for (int i = N - 3; i < N; i++) {
        fq_queue q = qs[i];
        fqt_submit_gate(q, &g, 1, 0);
        fqt_gate_started(q, &g);
        /* Any wake-up still pending ends this wait; the next one must
         * wait out its timeout, and a fresh wake-up end it early. */
        FQT_EQ(fq_poll(q, 100), 0);
        int64_t t0 = fqp_now_ms();
        FQT_EQ(fq_poll(q, 100), 0);
        assert_true(fqp_now_ms() - t0 >= 95);
        FQT_OK(fq_wakeup(q));
        t0 = fqp_now_ms();
        FQT_EQ(fq_poll(q, LONG_MS), 0);
        assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
        fqt_gate_open(&g, 1);
        FQT_OK(fq_wait(q, 30000));
    }
    for (int i = 0; i < N; i++)
        FQT_OK(fq_queue_free(qs[i]));
    for (int i = 0; i < N; i++)
        FQT_EQ(fq_wakeup(qs[i]), FQ_ECLOSED);
    fqt_gate_free(&g);
}

/* Bad handles, and the call from a forked child. */
static void test_wakeup_misuse(void **state)
{
    (void)state;
    fq_queue zero = {0};
    FQT_EQ(fq_wakeup(zero), FQ_EINVAL);
    fq_queue q = fqt_queue(1, 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fq_wakeup(q) == FQ_EFOREIGN ? 0 : 1);
    assert_true(pid > 0);
    assert_int_equal(fqt_wait_child(pid), 0);
    /* The child's attempt did not wake us. */
    fqt_submit_square(q, 5);
    FQT_OK(fq_wait(q, 30000));
    FQT_OK(fq_queue_free(q));
    FQT_EQ(fq_wakeup(q), FQ_ECLOSED);
}

/* Counts the eventfds (or, without eventfd, pipes) open in this process. */
static int count_wake_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = 0;
        if (strstr(link, "eventfd"))
            n++;
    }
    closedir(d);
    return n;
}

static int job_count_wake_fds(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    uint64_t n = (uint64_t)count_wake_fds();
    return fq_reply(ctx, &n, sizeof n) == 0 ? 0 : 100;
}

/* The descriptor is close-on-exec, made per queue, closed with it and
 * never inherited by workers. */
static void test_wakeup_descriptor(void **state)
{
    (void)state;
    int before = count_wake_fds();
    fq_queue a = fqt_queue(1, 0), b = fqt_queue(1, 0);
    assert_int_equal(count_wake_fds(), before + 2);
    FQT_OK(fq_submit(b, job_count_wake_fds, NULL, 0, NULL, NULL));
    fq_result r;
    assert_int_equal(fqt_take_wait(b, &r, 30000), 1);
    assert_int_equal(fqt_u64(&r), (uint64_t)before);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = 0;
        if (strstr(link, "eventfd")) {
            int fl = fcntl(atoi(e->d_name), F_GETFD);
            assert_true(fl >= 0 && (fl & FD_CLOEXEC));
            checked++;
        }
    }
    closedir(d);
    assert_true(checked >= 2);
    FQT_OK(fq_queue_free(a));
    FQT_OK(fq_queue_free(b));
    assert_int_equal(count_wake_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_wakeup_pending),
        FQT_TEST(test_wakeup_kept_by_nonblocking),
        FQT_TEST(test_wakeup_wait_done),
        FQT_TEST(test_wakeup_from_thread),
        FQT_TEST(test_wakeup_handoff),
        FQT_TEST(test_wakeup_races_free),
        FQT_TEST(test_wakeup_from_signal_handler),
        FQT_TEST(test_wakeup_many_queues),
        FQT_TEST(test_wakeup_misuse),
        FQT_TEST(test_wakeup_descriptor),
    };
    return FQT_RUN(tests);
}
