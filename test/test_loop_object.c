/*
 * The loop object (fq_loop): many queues and channels waited on at once,
 * timers, the wake-up from other threads and signal handlers, sources
 * leaving while ready, queues freed while in a loop, bad arguments. The
 * outside-driven mode (fq_loop_fd() + fq_loop_timeout()) is
 * test_loop_drive.c; exchanges, fq_wakeup() on a queue and the seam for
 * job handles test_loop_sources.c. Also built with TSan
 * (test_loop_object_tsan).
 */
#include "loop_test.h"

#include <pthread.h>
#include <stdatomic.h>

#if defined(FQ_TEST_TSAN)
#define SCALE 4
#else
#define SCALE 1
#endif

/* ---- many sources ----------------------------------------------------------
 */

#define NQ 3
#define NC 3

/* Three queues and three channels in one loop; results and messages come
 * in an order the test chooses, unlike the order of adding, and each wait
 * reports exactly the source that became ready. */
static void test_many_sources_out_of_order(void **state)
{
    (void)state;
    int p[NQ][2];
    fq_queue q[NQ];
    fq_channel ch[NC];
    int tag[NQ + NC];
    fq_loop *l;

    for (int i = 0; i < NQ; i++)
        fqt_pipe(p[i]);
    for (int i = 0; i < NQ; i++) {
        q[i] = fqt_queue(1, 0);
        submit_after_byte(q[i], p[i][0], 100 + (uint64_t)i);
    }
    for (int i = 0; i < NC; i++)
        FQT_OK(fq_channel_start(&ch[i], echo_main, NULL, NULL));
    FQT_OK(fq_loop_new(&l, NULL));
    for (int i = 0; i < NQ; i++)
        FQT_OK(fq_loop_add_queue(l, q[i], &tag[i]));
    for (int i = 0; i < NC; i++)
        FQT_OK(fq_loop_add_channel(l, ch[i], &tag[NQ + i]));

    fq_loop_event ev[8];
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_loop_wait(l, ev, 8, 100), 0); /* nothing yet: times out */
    assert_true(fqp_now_ms() - t0 >= 95);

    /* Steps: queue (0..2) or channel (3..5). */
    static const int order[] = {1, 5, 0, 3, 2, 4};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        int s = order[k];
        if (s < NQ) {
            assert_int_equal(fqt_write_all(p[s][1], "x", 1), 0);
            fq_loop_event e = expect_one(l, FQ_LOOP_QUEUE, q[s].id);
            assert_ptr_equal(e.udata, &tag[s]);
            assert_int_equal(e.count, 1);
            assert_int_equal(e.flags, 0);
            fq_result r;
            FQT_EQ(fq_take(q[s], &r), 1);
            assert_int_equal(fqt_u64(&r), 100 + (uint64_t)s);
        } else {
            int c = s - NQ;
            uint64_t v = 1000 + (uint64_t)c;
            FQT_OK(fq_channel_send(ch[c], &v, sizeof v));
            fq_loop_event e = expect_one(l, FQ_LOOP_CHANNEL, ch[c].id);
            assert_ptr_equal(e.udata, &tag[s]);
            assert_int_equal(e.flags, 0);
            fq_msg m;
            FQT_EQ(fq_channel_recv(ch[c], &m, 0), 1);
            assert_int_equal(m.len, sizeof v);
            assert_memory_equal(m.data, &v, sizeof v);
            fq_msg_free(&m);
        }
        expect_none(l); /* taken or received: reported no more */
    }

    /* Each channel ends once: reported with FQ_LOOP_ENDED, then gone. */
    for (int i = 0; i < NC; i++)
        FQT_OK(fq_channel_send(ch[i], "end", 3));
    int ended[NC] = {0};
    for (int got = 0; got < NC;) {
        int n = wait_some(l, ev, 8, LONG_MS);
        assert_true(n > 0);
        for (int k = 0; k < n; k++) {
            assert_int_equal(ev[k].type, FQ_LOOP_CHANNEL);
            assert_int_equal(ev[k].flags, FQ_LOOP_ENDED);
            int c = (int)((int *)ev[k].udata - &tag[NQ]);
            assert_true(c >= 0 && c < NC);
            assert_int_equal(ended[c]++, 0);
            got++;
        }
    }
    expect_none(l);
    FQT_EQ(fq_loop_remove_channel(l, ch[0]), FQ_EINVAL); /* left already */
    for (int i = 0; i < NC; i++) {
        int st = -1;
        FQT_OK(fq_channel_wait(ch[i], &st, LONG_MS));
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        FQT_OK(fq_channel_free(ch[i]));
    }
    FQT_OK(fq_loop_free(l));
    for (int i = 0; i < NQ; i++) {
        FQT_OK(fq_queue_free(q[i]));
        fqt_close(&p[i][0]);
        fqt_close(&p[i][1]);
    }
    fqt_assert_no_children();
}

/* Many results of many queues: every outcome arrives through the loop. */
static void test_many_results(void **state)
{
    (void)state;
    enum { QUEUES = 4, JOBS = 2000 / SCALE };
    fq_queue q[QUEUES];
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    for (int i = 0; i < QUEUES; i++) {
        q[i] = fqt_queue(1 + i % 2, i % 2);
        FQT_OK(fq_loop_add_queue(l, q[i], NULL));
    }
    uint64_t sum[QUEUES] = {0}, want[QUEUES] = {0};
    int left = 0;
    for (int j = 0; j < JOBS; j++) {
        int i = j % QUEUES;
        fqt_submit_square(q[i], (uint64_t)j);
        want[i] += fqt_square((uint64_t)j);
        left++;
    }
    fq_loop_event ev[QUEUES];
    while (left > 0) {
        int n = wait_some(l, ev, QUEUES, LONG_MS);
        assert_true(n > 0);
        for (int k = 0; k < n; k++) {
            assert_int_equal(ev[k].type, FQ_LOOP_QUEUE);
            assert_true(ev[k].count > 0);
            fq_queue h = {(uint32_t)ev[k].id};
            int i = 0;
            while (i < QUEUES && q[i].id != h.id)
                i++;
            assert_true(i < QUEUES);
            fq_result r;
            uint64_t took = 0;
            while (fq_take(h, &r) == 1) {
                sum[i] += fqt_u64(&r);
                took++;
                left--;
            }
            assert_true(took >= ev[k].count);
        }
    }
    for (int i = 0; i < QUEUES; i++)
        assert_true(sum[i] == want[i]);
    FQT_OK(fq_loop_free(l));
    for (int i = 0; i < QUEUES; i++)
        FQT_OK(fq_queue_free(q[i]));
    fqt_assert_no_children();
}

/* ---- timers ----------------------------------------------------------------
 */

struct tstate {
    int calls;
    int rearm; /* re-arms itself with delay 0 this many times */
    int wait_rc, free_rc, timeout_rc;
    uint64_t last_id;
};

static void on_timer(fq_loop *l, uint64_t id, void *udata)
{
    struct tstate *t = udata;
    fq_loop_event ev[1];
    int ms;
    t->calls++;
    t->last_id = id;
    t->wait_rc = fq_loop_wait(l, ev, 1, 0);
    t->free_rc = fq_loop_free(l);
    t->timeout_rc = fq_loop_timeout(l, &ms);
    if (t->rearm > 0) {
        t->rearm--;
        fq_loop_timer(l, 0, on_timer, t, NULL);
    }
}

static void test_timers(void **state)
{
    (void)state;
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    int ms = 0;
    FQT_OK(fq_loop_timeout(l, &ms));
    assert_int_equal(ms, -1); /* nothing due, ever */

    struct tstate ts = {0};
    int a, b;
    uint64_t ida, idb, idc;
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_loop_timer(l, 150, NULL, &a, &ida));
    FQT_OK(fq_loop_timer(l, 30, on_timer, &ts, &idb));
    FQT_OK(fq_loop_timer(l, 60, NULL, &b, &idc));
    assert_true(ida && idb && idc && ida != idb && idb != idc);
    FQT_OK(fq_loop_timer_cancel(l, idc));
    FQT_EQ(fq_loop_timer_cancel(l, idc), FQ_EINVAL);
    FQT_OK(fq_loop_timeout(l, &ms));
    assert_true(ms >= 0 && ms <= 30);

    /* The callback runs first (no event), then the 150 ms timer fires. */
    fq_loop_event ev[4];
    int n = wait_some(l, ev, 4, LONG_MS);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, FQ_LOOP_TIMER);
    assert_true(ev[0].id == ida);
    assert_ptr_equal(ev[0].udata, &a);
    assert_true(fqp_now_ms() - t0 >= 150);
    assert_int_equal(ts.calls, 1);
    assert_true(ts.last_id == idb);
    /* Inside a callback, waiting, freeing and timeout are refused. */
    FQT_EQ(ts.wait_rc, FQ_EBUSY);
    FQT_EQ(ts.free_rc, FQ_EBUSY);
    FQT_EQ(ts.timeout_rc, FQ_EBUSY);
    expect_none(l);
    FQT_OK(fq_loop_timeout(l, &ms));
    assert_int_equal(ms, -1);

    /* A callback that re-arms itself at delay 0 runs once per call. */
    struct tstate re = {0};
    re.rearm = 3;
    FQT_OK(fq_loop_timer(l, 0, on_timer, &re, NULL));
    for (int i = 1; i <= 4; i++) {
        FQT_EQ(fq_loop_wait(l, ev, 4, LONG_MS), 0);
        assert_int_equal(re.calls, i);
    }
    FQT_OK(fq_loop_timeout(l, &ms));
    assert_int_equal(ms, -1);

    /* Due timers beyond max wait for the next call, in order. */
    uint64_t id[3];
    for (int i = 0; i < 3; i++)
        FQT_OK(fq_loop_timer(l, 0, NULL, NULL, &id[i]));
    FQT_EQ(fq_loop_wait(l, ev, 2, 0), 2);
    assert_true(ev[0].id == id[0] && ev[1].id == id[1]);
    FQT_EQ(fq_loop_wait(l, ev, 2, 0), 1);
    assert_true(ev[0].id == id[2]);

    /* Both due by the time of the call: the earlier deadline first, though
     * it was set second (100 ms apart, so a slow machine between the two
     * calls cannot swap them). The condition is time itself: let it pass. */
    int64_t set0 = fqp_now_ms();
    FQT_OK(fq_loop_timer(l, 100, NULL, NULL, &id[0]));
    FQT_OK(fq_loop_timer(l, 0, NULL, NULL, &id[1]));
    int64_t set1 = fqp_now_ms();
    struct timespec pause = {0, 150 * 1000 * 1000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
        ;
    FQT_EQ(fq_loop_wait(l, ev, 4, 0), 2);
    if (set1 - set0 < 90) /* else the machine stalled between the two */
        assert_true(ev[0].id == id[1] && ev[1].id == id[0]);
    else
        print_message("timers set %lld ms apart: order not checked\n",
                      (long long)(set1 - set0));
    FQT_OK(fq_loop_free(l));
}

/* ---- wake-up ----------------------------------------------------------------
 */

struct waker {
    fq_loop *l;
    pid_t main_tid;
    int rounds;
    int rc;
    _Atomic int done;
};

static void *waker_main(void *arg)
{
    struct waker *wk = arg;
    for (int i = 0; i < wk->rounds; i++) {
        if (i == 0)
            fqt_await_sleeping(wk->main_tid);
        int rc = fq_loop_wakeup(wk->l);
        if (rc)
            wk->rc = rc;
    }
    atomic_store(&wk->done, 1);
    fq_loop_wakeup(wk->l);
    return NULL;
}

/* A wait blocked in the loop's thread returns when another thread wakes
 * it; a stream of wake-ups from a thread is never lost (the last one after
 * `done` always ends a wait), and with nothing else to wait for the loop
 * waits for a wake-up, not EBUSY. */
static void test_wakeup_from_thread(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = fqt_queue(1, 0);
    fqt_submit_gate(q, &g, 7, 0);
    fqt_gate_started(q, &g);
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq_loop_add_queue(l, q, NULL));

    for (int rounds = 1; rounds <= 200 / SCALE; rounds *= 20) {
        struct waker wk = {l, fqt_tid(), rounds, 0, 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, waker_main, &wk), 0);
        int64_t t0 = fqp_now_ms();
        fq_loop_event ev[4];
        int wakeups = 0;
        while (!atomic_load(&wk.done) || wakeups == 0) {
            int n = fq_loop_wait(l, ev, 4, LONG_MS);
            assert_true(n >= 0 && n <= 1);
            if (n == 1) {
                assert_int_equal(ev[0].type, FQ_LOOP_WAKEUP);
                wakeups++;
            }
            assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
        }
        pthread_join(t, NULL);
        FQT_OK(wk.rc);
        /* Pending wake-ups count as one: at most one more report. */
        int n = fq_loop_wait(l, ev, 4, 0);
        assert_true(n == 0 || (n == 1 && ev[0].type == FQ_LOOP_WAKEUP));
        expect_none(l);
    }
    /* The same with an empty loop (only a wake-up can end the wait). */
    FQT_OK(fq_loop_remove_queue(l, q));
    struct waker wk = {l, fqt_tid(), 1, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waker_main, &wk), 0);
    fq_loop_event ev[4];
    FQT_EQ(fq_loop_wait(l, ev, 4, LONG_MS), 1);
    assert_int_equal(ev[0].type, FQ_LOOP_WAKEUP);
    pthread_join(t, NULL);
    FQT_OK(fq_loop_free(l));
    fqt_gate_open(&g, 1);
    FQT_OK(fq_wait(q, LONG_MS));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

static fq_loop *sig_loop;
static _Atomic int sig_rc = 1;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    errno = 12345;
    int rc = fq_loop_wakeup(sig_loop);
    atomic_store(&sig_rc, errno == 12345 ? rc : -999);
    errno = saved;
}

struct kicker {
    pthread_t main;
    pid_t main_tid;
};

static void *kicker_main(void *arg)
{
    struct kicker *k = arg;
    fqt_await_sleeping(k->main_tid);
    pthread_kill(k->main, SIGUSR1);
    return NULL;
}

/* From a signal handler: the interrupted wait resumes (no return_on_eintr)
 * and reports the wake-up at once; errno is kept. */
static void test_wakeup_from_signal_handler(void **state)
{
    (void)state;
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    sig_loop = l;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    struct kicker k = {pthread_self(), fqt_tid()};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, kicker_main, &k), 0);
    int64_t t0 = fqp_now_ms();
    fq_loop_event ev[2];
    FQT_EQ(fq_loop_wait(l, ev, 2, LONG_MS), 1);
    assert_int_equal(ev[0].type, FQ_LOOP_WAKEUP);
    assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
    pthread_join(t, NULL);
    sigaction(SIGUSR1, &old, NULL);
    FQT_EQ(atomic_load(&sig_rc), 0);
    FQT_OK(fq_loop_free(l));
}

static void on_usr1_nothing(int sig)
{
    (void)sig;
}

struct repeat_kicker {
    pthread_t main;
    pid_t main_tid;
    _Atomic int done;
};

/* Signals the main thread whenever it is blocked, until it says done: a
 * signal that arrived before the wait blocked cannot make the test hang. */
static void *repeat_kicker_main(void *arg)
{
    struct repeat_kicker *k = arg;
    int64_t end = fqp_now_ms() + 10000;
    while (!atomic_load(&k->done) && fqp_now_ms() < end) {
        if (fqt_thread_sleeping(k->main_tid))
            pthread_kill(k->main, SIGUSR1);
        sched_yield();
    }
    return NULL;
}

/* With return_on_eintr, a caught signal ends the wait with FQ_EINTR. */
static void test_return_on_eintr(void **state)
{
    (void)state;
    fq_loop_options o;
    memset(&o, 0, sizeof o);
    o.return_on_eintr = 1;
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, &o));
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_nothing;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    struct repeat_kicker k = {pthread_self(), fqt_tid(), 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, repeat_kicker_main, &k), 0);
    int64_t t0 = fqp_now_ms();
    fq_loop_event ev[2];
    FQT_EQ(fq_loop_wait(l, ev, 2, LONG_MS), FQ_EINTR);
    assert_true(fqp_now_ms() - t0 < LONG_MS / 2);
    atomic_store(&k.done, 1);
    pthread_join(t, NULL);
    sigaction(SIGUSR1, &old, NULL);
    expect_none(l);
    FQT_OK(fq_loop_free(l));
}

/* ---- sources leaving --------------------------------------------------------
 */

struct remover {
    fq_queue q;
    fq_channel ch;
    int rc_q, rc_ch;
};

static void remove_in_callback(fq_loop *l, uint64_t id, void *udata)
{
    (void)id;
    struct remover *r = udata;
    r->rc_q = fq_loop_remove_queue(l, r->q);
    r->rc_ch = fq_loop_remove_channel(l, r->ch);
}

/* A queue with an outcome ready and a channel with a message ready, taken
 * out of the loop: not reported any more; their data stays theirs. The
 * same from inside a timer callback of the wait that would report them. */
static void test_remove_while_ready(void **state)
{
    (void)state;
    for (int in_cb = 0; in_cb < 2; in_cb++) {
        fq_queue q = fqt_queue(1, 0);
        fq_channel ch;
        FQT_OK(fq_channel_start(&ch, echo_main, NULL, NULL));
        fq_loop *l;
        FQT_OK(fq_loop_new(&l, NULL));
        FQT_OK(fq_loop_add_queue(l, q, NULL));
        FQT_OK(fq_loop_add_channel(l, ch, NULL));
        fqt_submit_square(q, 5);
        FQT_OK(fq_channel_send(ch, "hi", 2));
        fq_loop_event ev[4];
        int seen = 0;
        while (seen != 3) {
            int n = wait_some(l, ev, 4, LONG_MS);
            assert_true(n > 0);
            for (int k = 0; k < n; k++)
                seen |= ev[k].type == FQ_LOOP_QUEUE ? 1 : 2;
        }
        if (in_cb) {
            struct remover r = {q, ch, -100, -100};
            FQT_OK(fq_loop_timer(l, 0, remove_in_callback, &r, NULL));
            FQT_EQ(fq_loop_wait(l, ev, 4, 0), 0);
            FQT_OK(r.rc_q);
            FQT_OK(r.rc_ch);
        } else {
            FQT_OK(fq_loop_remove_queue(l, q));
            FQT_OK(fq_loop_remove_channel(l, ch));
        }
        expect_none(l);
        FQT_EQ(fq_loop_remove_queue(l, q), FQ_EINVAL);
        FQT_EQ(fq_loop_remove_channel(l, ch), FQ_EINVAL);
        fq_result r;
        FQT_EQ(fq_take(q, &r), 1);
        assert_int_equal(fqt_u64(&r), fqt_square(5));
        fq_msg m;
        FQT_EQ(fq_channel_recv(ch, &m, 0), 1);
        assert_int_equal(m.len, 2);
        fq_msg_free(&m);
        /* Back in: the queue has nothing, the channel nothing. */
        FQT_OK(fq_loop_add_queue(l, q, NULL));
        FQT_OK(fq_loop_add_channel(l, ch, NULL));
        expect_none(l);
        FQT_OK(fq_loop_free(l));
        FQT_OK(fq_channel_close(ch));
        FQT_OK(fq_channel_wait(ch, NULL, LONG_MS));
        FQT_OK(fq_channel_free(ch));
        FQT_OK(fq_queue_free(q));
    }
    fqt_assert_no_children();
}

struct freer {
    fq_queue q;
    pid_t main_tid;
    int rc;
};

static void *freer_main(void *arg)
{
    struct freer *f = arg;
    fqt_await_sleeping(f->main_tid);
    f->rc = fq_queue_free(f->q);
    return NULL;
}

/* A queue freed while in a loop (by this thread between waits, or by
 * another thread during one) is reported once with FQ_LOOP_CLOSED, leaves
 * the loop, and its workers are gone by then; freeing the loop destroys a
 * freed queue it still held. A freed channel likewise. */
static void test_free_queue_in_loop(void **state)
{
    (void)state;
    for (int how = 0; how < 3; how++) {
        fqt_gate g;
        fqt_gate_new(&g);
        fq_queue q = fqt_queue(2, 0);
        fqt_submit_gate(q, &g, 1, 0);
        pid_t busy = fqt_gate_started(q, &g);
        pid_t pids[4];
        FQT_EQ(fq_worker_pids(q, pids, 4), 2);
        fq_loop *l;
        FQT_OK(fq_loop_new(&l, NULL));
        int tag;
        FQT_OK(fq_loop_add_queue(l, q, &tag));
        if (how == 0) {
            FQT_OK(fq_queue_free(q));
            fq_loop_event e = expect_one(l, FQ_LOOP_QUEUE, q.id);
            assert_int_equal(e.flags, FQ_LOOP_CLOSED);
            assert_ptr_equal(e.udata, &tag);
        } else if (how == 1) {
            struct freer f = {q, fqt_tid(), -100};
            pthread_t t;
            assert_int_equal(pthread_create(&t, NULL, freer_main, &f), 0);
            fq_loop_event e = expect_one(l, FQ_LOOP_QUEUE, q.id);
            assert_int_equal(e.flags, FQ_LOOP_CLOSED);
            pthread_join(t, NULL);
            FQT_OK(f.rc);
        } else {
            FQT_OK(fq_queue_free(q));
        }
        FQT_EQ(fq_loop_remove_queue(l, q), how == 2 ? 0 : FQ_EINVAL);
        FQT_OK(fq_loop_free(l));
        FQT_EQ(fq_submit(q, fqt_job_echo, "", 0, NULL, NULL), FQ_ECLOSED);
        for (int i = 0; i < 2; i++)
            assert_true(fqt_wait_gone(pids[i], 0, 100));
        (void)busy;
        fqt_gate_free(&g);
    }
    /* Freed with the loop holding it, then the loop freed. */
    fq_queue q = fqt_queue(1, 0);
    pid_t pid;
    FQT_EQ(fq_worker_pids(q, &pid, 1), 1);
    fq_loop *l;
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq_loop_add_queue(l, q, NULL));
    FQT_OK(fq_queue_free(q));
    FQT_OK(fq_loop_free(l));
    assert_true(fqt_wait_gone(pid, 0, 100));

    /* A freed channel. */
    fq_channel ch;
    FQT_OK(fq_channel_start(&ch, echo_main, NULL, NULL));
    FQT_OK(fq_loop_new(&l, NULL));
    FQT_OK(fq_loop_add_channel(l, ch, NULL));
    expect_none(l);
    FQT_OK(fq_channel_free(ch));
    fq_loop_event e = expect_one(l, FQ_LOOP_CHANNEL, ch.id);
    assert_int_equal(e.flags, FQ_LOOP_CLOSED);
    expect_none(l);
    FQT_OK(fq_loop_free(l));
    FQT_EQ(fq_channel_cleanup(0, LONG_MS), 0);
    fqt_assert_no_children();
}

/* fq_wakeup() on a queue in a loop wakes the loop: FQ_LOOP_WOKEN. */
/* ---- bad arguments ----------------------------------------------------------
 */

static void test_bad_arguments(void **state)
{
    (void)state;
    fq_loop *l = NULL;
    fq_loop_event ev[2];
    int ms;
    FQT_EQ(fq_loop_new(NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_free(NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_wait(NULL, ev, 2, 0), FQ_EINVAL);
    FQT_EQ(fq_loop_process(NULL, ev, 2), FQ_EINVAL);
    FQT_EQ(fq_loop_timeout(NULL, &ms), FQ_EINVAL);
    FQT_EQ(fq_loop_fd(NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_wakeup(NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_timer(NULL, 0, NULL, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_timer_cancel(NULL, 1), FQ_EINVAL);
    fq_queue q0 = {0};
    fq_channel c0 = {0};
    FQT_EQ(fq_loop_add_queue(NULL, q0, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_add_channel(NULL, c0, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_remove_queue(NULL, q0), FQ_EINVAL);
    FQT_EQ(fq_loop_remove_channel(NULL, c0), FQ_EINVAL);
    FQT_EQ(fq_loop_add_exchange(NULL, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_remove_exchange(NULL, NULL), FQ_EINVAL);

    FQT_OK(fq_loop_new(&l, NULL));
    FQT_EQ(fq_loop_wait(l, NULL, 2, 0), FQ_EINVAL);
    FQT_EQ(fq_loop_wait(l, ev, 0, 0), FQ_EINVAL);
    FQT_EQ(fq_loop_wait(l, ev, 2, -2), FQ_EINVAL);
    FQT_EQ(fq_loop_timeout(l, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_timer(l, -1, NULL, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_timer_cancel(l, 0), FQ_EINVAL);
    FQT_EQ(fq_loop_timer_cancel(l, 12345), FQ_EINVAL);
    FQT_EQ(fq_loop_add_queue(l, q0, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_add_channel(l, c0, NULL), FQ_EINVAL);
    FQT_EQ(fq_loop_remove_queue(l, q0), FQ_EINVAL);
    FQT_EQ(fq_loop_remove_channel(l, c0), FQ_EINVAL);
    fq_queue stale = {999999};
    fq_channel stale_ch = {999999};
    FQT_EQ(fq_loop_add_queue(l, stale, NULL), FQ_ECLOSED);
    FQT_EQ(fq_loop_add_channel(l, stale_ch, NULL), FQ_ECLOSED);
    FQT_EQ(fq_loop_remove_queue(l, stale), FQ_EINVAL);

    fq_queue q = fqt_queue(1, 0);
    FQT_OK(fq_loop_add_queue(l, q, NULL));
    FQT_EQ(fq_loop_add_queue(l, q, NULL), FQ_EINVAL); /* already in */
    fq_queue freed = fqt_queue(1, 0);
    FQT_OK(fq_queue_free(freed));
    FQT_EQ(fq_loop_add_queue(l, freed, NULL), FQ_ECLOSED);

    /* In a forked child, the loop is not this process's. The answers come
     * through a pipe (valgrind may change the child's exit status). */
    int res[2];
    fqt_pipe(res);
    pid_t pid = fork();
    if (pid == 0) {
        int rc[2] = {fq_loop_wait(l, ev, 2, 0), fq_loop_timeout(l, &ms)};
        _exit(fqt_write_all(res[1], rc, sizeof rc) == 0 ? 0 : 1);
    }
    assert_true(pid > 0);
    close(res[1]);
    int got[2] = {0, 0};
    assert_int_equal(fqt_read_all(res[0], got, sizeof got), 0);
    close(res[0]);
    FQT_EQ(got[0], FQ_EFOREIGN);
    FQT_EQ(got[1], FQ_EFOREIGN);
    fqt_wait_child(pid);

    FQT_OK(fq_loop_free(l));
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_many_sources_out_of_order),
        FQT_TEST(test_many_results),
        FQT_TEST(test_timers),
        FQT_TEST(test_wakeup_from_thread),
        FQT_TEST(test_wakeup_from_signal_handler),
        FQT_TEST(test_return_on_eintr),
        FQT_TEST(test_remove_while_ready),
        FQT_TEST(test_free_queue_in_loop),
        FQT_TEST(test_bad_arguments),
    };
    return FQT_RUN(tests);
}
