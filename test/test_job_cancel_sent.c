/*
 * Cancelling job handles written to a worker without a shared status page
 * (the wire-only process kind of the tests, and remote workers on a server
 * on loopback): no claim word can take such a job back, so a CANCEL frame
 * asks the worker to skip it. The job ends FQ_ECANCELED at once, exactly
 * once, never runs, and the worker stays and runs the jobs behind it.
 * Races (the CANCEL arriving as the job starts or ends) give one outcome.
 */
#include "fq_remote_test.h"
#include "job_test.h"
#include "queue/queue.h" /* white box: the queue's workers */

/* ---- White box: what the parent holds for its workers ------------------ */

/* 1 when every job given to a worker of q has been written whole. */
static int all_written(fq_queue h)
{
    fq__queue *q = NULL;
    if (fq__handle_get(h, &q))
        return 0;
    int ok = 1;
    for (int i = 0; i < q->nw; i++)
        if (q->w[i]->unsent)
            ok = 0;
    fq__handle_release(&q);
    return ok;
}

/* How many records in the workers' FIFOs stand for jobs cancelled before
 * they started (waiting for the worker's answer). */
static int ghosts(fq_queue h)
{
    fq__queue *q = NULL;
    if (fq__handle_get(h, &q))
        return -1;
    int n = 0;
    for (int i = 0; i < q->nw; i++)
        for (fq__job *j = q->w[i]->head; j; j = j->next)
            n += j->cancel == FQ__CANCEL_GHOST;
    fq__handle_release(&q);
    return n;
}

static void drive_until_written(fq_queue q)
{
    int64_t end = fqp_now_ms() + 20000;
    while (!all_written(q) && fqp_now_ms() < end)
        (void)fq_poll(q, 1);
    assert_true(all_written(q));
}

/* ---- Jobs -------------------------------------------------------------- */

typedef struct mark_arg {
    int fd;
    uint32_t value;
} mark_arg;

/* Writes its value to the pipe: proves that (and how often) it ran. */
static int job_mark(fq_ctx *ctx, const void *arg, size_t len)
{
    mark_arg a;
    if (len != sizeof a)
        return fq_fail(ctx, 99, "bad argument length");
    memcpy(&a, arg, sizeof a);
    if (fqt_write_all(a.fd, &a.value, sizeof a.value) != 0)
        return 5;
    return fq_reply(ctx, &a.value, sizeof a.value) == 0 ? 0 : 100;
}

static int job_pid(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    pid_t p = getpid();
    return fq_reply(ctx, &p, sizeof p) == 0 ? 0 : 100;
}

static fq_job *submit_mark(fq_queue q, int fd, uint32_t value, cb_rec *rec)
{
    mark_arg a;
    memset(&a, 0, sizeof a);
    a.fd = fd;
    a.value = value;
    return submit_with(q, job_mark, &a, sizeof a, rec);
}

/* Reads every mark written so far (the writers are done): counts per value
 * below n. */
static void read_marks(int fd, unsigned *count, unsigned n)
{
    uint32_t v;
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 0) == 1) {
        assert_int_equal(fqt_read_all(fd, &v, sizeof v), 0);
        assert_true(v < n);
        count[v]++;
    }
}

static pid_t worker_pid_of(fq_queue q)
{
    fq_job *j = submit_with(q, job_pid, NULL, 0, NULL);
    FQT_OK(fq_job_wait(j, 20000));
    fq_result r;
    FQT_OK(fq_job_result(j, &r));
    assert_int_equal(r.status, 0);
    pid_t p;
    memcpy(&p, r.data, sizeof p);
    fq_job_free(j);
    return p;
}

/* ---- The scenario, on any kind without a page ------------------------- */

enum { NB = 6 };

/*
 * One worker runs a gated job; NB marking jobs and a square wait behind it,
 * written to its channel. Every odd marking job is cancelled: each call
 * returns at once with the outcome given (callback run once), and a ghost
 * waits for the worker's answer. Once the gate opens, the others and the
 * square run on the same worker; the cancelled ones never ran; the ghosts
 * are answered and gone; nothing crashed and no worker was replaced.
 */
static void skip_scenario(fq_queue q, fqt_gate *g, int mark[2])
{
    fq_job *gate = submit_gate(q, g, 5, 0, NULL);
    fq_job *b[NB];
    cb_rec rec[NB];
    memset(rec, 0, sizeof rec);
    for (int i = 0; i < NB; i++)
        b[i] = submit_mark(q, mark[1], (uint32_t)i, &rec[i]);
    fq_job *after = submit_square(q, 4, NULL);
    pid_t pid = fqt_gate_started(q, g);
    drive_until_written(q);

    for (int i = 1; i < NB; i += 2) {
        int64_t t0 = fqp_now_ms();
        FQT_OK(fq_job_cancel(b[i]));
        assert_true(fqp_now_ms() - t0 < 1000); /* no worker stopped */
        assert_int_equal(atomic_load(&rec[i].calls), 1);
        assert_int_equal(rec[i].status, FQ_ECANCELED);
        assert_int_equal(job_status(b[i]), FQ_ECANCELED);
        FQT_EQ(fq_job_done(b[i]), 1);
        FQT_EQ(fq_job_cancel(b[i]), 1); /* had its outcome */
    }
    /* The worker is still blocked in the gate: nothing answered yet. */
    assert_int_equal(ghosts(q), NB / 2);

    fqt_gate_open(g, 1);
    FQT_OK(fq_job_wait(after, 20000));
    fq_result r;
    FQT_OK(fq_job_result(after, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(4));
    FQT_OK(fq_job_wait(gate, 20000));
    FQT_OK(fq_job_result(gate, &r));
    assert_int_equal(fqt_u64(&r), 5);
    /* Results come in order: the ghosts were answered before `after`. */
    assert_int_equal(ghosts(q), 0);

    unsigned count[NB] = {0};
    for (int i = 0; i < NB; i++) {
        FQT_OK(fq_job_wait(b[i], 20000));
        assert_int_equal(atomic_load(&rec[i].calls), 1);
        if (i % 2) {
            assert_int_equal(job_status(b[i]), FQ_ECANCELED);
        } else {
            FQT_OK(fq_job_result(b[i], &r));
            assert_int_equal(r.status, 0);
        }
    }
    read_marks(mark[0], count, NB);
    for (int i = 0; i < NB; i++)
        assert_int_equal(count[i], i % 2 ? 0 : 1);
    /* The same worker, never stopped, takes more. */
    assert_int_equal(worker_pid_of(q), pid);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 0);
    for (int i = 0; i < NB; i++)
        fq_job_free(b[i]);
    fq_job_free(gate);
    fq_job_free(after);
}

static void test_wire_kind_skips(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    int mark[2];
    fqt_pipe(mark); /* before the queue: its workers inherit it */
    fq_queue q = one_worker(FQ__WORKER_PROCESS_WIRE, 16, 0);
    skip_scenario(q, &g, mark);
    /* Twice on the same worker: its memory of cancels is per job. */
    skip_scenario(q, &g, mark);
    pid_t pids[2];
    assert_int_equal(fq_worker_pids(q, pids, 2), 1);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
    fqt_close(&mark[0]);
    fqt_close(&mark[1]);
    fqt_assert_no_children();
}

/* A queue whose only worker is remote: the local one it replaced retires. */
static fq_queue remote_only(const fqrt_server *s)
{
    char addr[64], err[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    fq_remote_options ro;
    memset(&ro, 0, sizeof ro);
    ro.key = FQRT_KEY;
    ro.key_len = strlen(FQRT_KEY);
    ro.connect_timeout_ms = 5000;
    ro.errbuf = err;
    ro.errbuf_size = sizeof err;
    ro.flags = FQ_REMOTE_REPLACE_LOCAL;
    fq_options o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    o.inflight = 16;
    fq_queue q = fqt_queue_opts(&o);
    FQT_OK(fq_queue_add_remote(q, addr, &ro));
    pid_t pids[2];
    int64_t end = fqp_now_ms() + 10000;
    while (fq_worker_pids(q, pids, 2) > 0 && fqp_now_ms() < end)
        (void)fq_poll(q, 10);
    assert_int_equal(fq_worker_pids(q, pids, 2), 0);
    return q;
}

static void test_remote_kind_skips(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g); /* before the server: its workers inherit it */
    int mark[2];
    fqt_pipe(mark);
    fqrt_server s = fqrt_start(NULL);
    fq_queue q = remote_only(&s);
    skip_scenario(q, &g, mark);
    skip_scenario(q, &g, mark);
    /* Still the one worker process on the server. */
    assert_int_equal(fqp_children(s.pid, NULL, 0, NULL), 1);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(fqrt_stop(&s), 0);
    fqt_gate_free(&g);
    fqt_close(&mark[0]);
    fqt_close(&mark[1]);
    fqt_assert_no_children();
}

/*
 * Cancels at every moment of a short job's life on a worker without a
 * page, with jobs before and behind it: just submitted, given, written,
 * running, answered but not read. Whatever the race, the cancelled job
 * gets one outcome (FQ_ECANCELED when the call says 0, its result when it
 * says 1) and runs at most once; every other job gets its result once, and
 * runs at most twice (once more only if its worker was stopped for a
 * CANCEL that came too late, while it ran there).
 *
 * A job cancelled as it started may still run, and finish, after its
 * outcome: its mark can come in a later round. So marks carry their round,
 * and the counts are checked once every process has ended.
 */
enum { PER = 4, MAX_ROUNDS = 300 };

typedef struct race {
    int rounds;
    int victim[MAX_ROUNDS];
    int rc[MAX_ROUNDS];
    unsigned count[MAX_ROUNDS][PER];
} race;

static uint32_t race_mark(int round, int i)
{
    return (uint32_t)(round * PER + i);
}

/* Reads every mark written so far into r's counts. */
static void race_read(race *r, int fd)
{
    uint32_t v;
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 0) == 1) {
        assert_int_equal(fqt_read_all(fd, &v, sizeof v), 0);
        assert_true(v < (uint32_t)(r->rounds * PER));
        r->count[v / PER][v % PER]++;
    }
}

static void cancel_race(fq_queue q, int mark[2], race *ra, int *stopped)
{
    int cancelled = 0, finished = 0;
    assert_true(ra->rounds <= MAX_ROUNDS);
    for (int round = 0; round < ra->rounds; round++) {
        fq_job *j[PER];
        cb_rec rec[PER];
        memset(rec, 0, sizeof rec);
        for (int i = 0; i < PER; i++)
            j[i] = submit_mark(q, mark[1], race_mark(round, i), &rec[i]);
        int victim = 1 + round % (PER - 1);
        /* Let the jobs move for a varying while. */
        for (int k = 0; k < round % 7; k++)
            (void)fq_job_done(j[victim]);
        int rc = fq_job_cancel(j[victim]);
        assert_true(rc == 0 || rc == 1);
        ra->victim[round] = victim;
        ra->rc[round] = rc;
        for (int i = 0; i < PER; i++)
            FQT_OK(fq_job_wait(j[i], 20000));
        race_read(ra, mark[0]);
        for (int i = 0; i < PER; i++) {
            assert_int_equal(atomic_load(&rec[i].calls), 1);
            fq_result r;
            FQT_OK(fq_job_result(j[i], &r));
            if (i == victim && rc == 0) {
                assert_int_equal(r.status, FQ_ECANCELED);
            } else {
                /* Its mark came before its result. */
                assert_int_equal(r.status, 0);
                assert_true(ra->count[round][i] >= 1);
            }
            fq_job_free(j[i]);
        }
        cancelled += rc == 0;
        finished += rc == 1;
    }
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    *stopped = (int)st.respawns;
    print_message("      %d cancelled, %d finished first, %d local workers "
                  "replaced (a CANCEL too late)\n",
                  cancelled, finished, *stopped);
    /* The queue still works. */
    fq_job *last = submit_square(q, 9, NULL);
    FQT_OK(fq_job_wait(last, 20000));
    fq_result r;
    FQT_OK(fq_job_result(last, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(9));
    fq_job_free(last);
}

/* After every process of the race has ended: how often each job ran. */
static void race_check(race *ra, int fd)
{
    int late = 0;
    race_read(ra, fd);
    for (int round = 0; round < ra->rounds; round++) {
        for (int i = 0; i < PER; i++) {
            unsigned n = ra->count[round][i];
            if (i != ra->victim[round])
                assert_true(n >= 1 && n <= 2);
            else if (ra->rc[round] == 0)
                assert_true(n <= 1);
            else
                assert_int_equal(n, 1);
        }
        late += ra->rc[round] == 0 && ra->count[round][ra->victim[round]];
    }
    print_message("      %d cancelled jobs had started all the same\n", late);
}

static void test_wire_kind_race(void **state)
{
    (void)state;
    int mark[2];
    fqt_pipe(mark);
    fq_queue q = one_worker(FQ__WORKER_PROCESS_WIRE, 8, 0);
    int stopped = 0;
    static race ra;
    memset(&ra, 0, sizeof ra);
    ra.rounds = 300;
    cancel_race(q, mark, &ra, &stopped);
    FQT_OK(fq_queue_free(q));
    fqt_assert_no_children();
    race_check(&ra, mark[0]);
    fqt_close(&mark[0]);
    fqt_close(&mark[1]);
    fqt_assert_no_children();
}

static fq_job *submit_square_id(fq_queue q, uint64_t x, uint64_t id, int *rc)
{
    fq_job_options o;
    memset(&o, 0, sizeof o);
    o.id = id;
    o.flags = FQ_JOB_ID;
    fq_job *j = NULL;
    *rc = fq_job_submit(q, fqt_job_square, &x, sizeof x, &o, &j);
    return j;
}

/* A cancelled job's id is free at once, though its ghost waits in the
 * worker's FIFO, also when ids start being tracked meanwhile (the first job
 * with an id of its own indexes the jobs in the FIFOs: not the ghosts). */
static void test_cancelled_id_is_free(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = one_worker(FQ__WORKER_PROCESS_WIRE, 8, 0);
    fq_job *gate = submit_gate(q, &g, 2, 0, NULL);
    fq_job *b = submit_square(q, 3, NULL);
    fqt_gate_started(q, &g);
    drive_until_written(q);
    uint64_t id = fq_job_id(b);
    FQT_OK(fq_job_cancel(b));
    assert_int_equal(ghosts(q), 1);
    int rc;
    fq_job *again = submit_square_id(q, 7, id, &rc);
    FQT_OK(rc);
    fq_job *dup = submit_square_id(q, 8, id, &rc);
    FQT_EQ(rc, FQ_EEXIST);
    assert_null(dup);
    fqt_gate_open(&g, 1);
    FQT_OK(fq_job_wait(again, 20000));
    fq_result r;
    FQT_OK(fq_job_result(again, &r));
    assert_int_equal(r.id, id);
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    assert_int_equal(ghosts(q), 0);
    assert_int_equal(job_status(b), FQ_ECANCELED);
    fq_job_free(again);
    fq_job_free(b);
    fq_job_free(gate);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* The same races with a remote worker beside a local one (a remote worker
 * stopped for a late CANCEL is not replaced: the local one goes on). */
static void test_remote_kind_race(void **state)
{
    (void)state;
    int mark[2];
    fqt_pipe(mark);
    fqrt_server s = fqrt_start(NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    fq_remote_options ro;
    memset(&ro, 0, sizeof ro);
    ro.key = FQRT_KEY;
    ro.key_len = strlen(FQRT_KEY);
    ro.connect_timeout_ms = 5000;
    fq_queue q = one_worker(0, 8, 0);
    FQT_OK(fq_queue_add_remote(q, addr, &ro));
    int stopped = 0;
    static race ra;
    memset(&ra, 0, sizeof ra);
    ra.rounds = 200;
    cancel_race(q, mark, &ra, &stopped);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(fqrt_stop(&s), 0); /* its workers have ended */
    race_check(&ra, mark[0]);
    fqt_close(&mark[0]);
    fqt_close(&mark[1]);
    fqt_assert_no_children();
}

/*
 * The CANCEL too late: a job that has started, whose STARTED frame the
 * parent has not read yet, is cancelled as one not started (at once, by
 * frame). When the STARTED frame comes, the worker is stopped as for a
 * running job: the job's outcome stays the one cancellation, the worker is
 * replaced, and the job written behind it runs on the new worker.
 */
static void test_wire_kind_started_before_cancel(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fq_queue q = one_worker(FQ__WORKER_PROCESS_WIRE, 8, 200);
    fq_job *first = submit_gate(q, &g, 1, 0, NULL);
    cb_rec rec = {0};
    fq_job *gate = submit_gate(q, &g, 3, 0, &rec);
    fq_job *behind = submit_square(q, 6, NULL);
    fqt_gate_started(q, &g);
    drive_until_written(q);
    /* The first job ends, the second starts; without driving the queue,
     * its STARTED frame stays unread. */
    fqt_gate_open(&g, 1);
    pid_t pid = 0;
    assert_int_equal(
        fqt_read_driving((fq_queue){0}, g.started[0], &pid, sizeof pid, 20000),
        0);
    unsigned long long start = fqt_proc_start(pid);
    FQT_OK(fq_job_cancel(gate));
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(gate), FQ_ECANCELED);
    assert_int_equal(ghosts(q), 1);
    FQT_OK(fq_job_wait(behind, 20000));
    fq_result r;
    FQT_OK(fq_job_result(behind, &r));
    assert_int_equal(fqt_u64(&r), fqt_square(6));
    FQT_OK(fq_job_wait(first, 20000));
    FQT_OK(fq_job_result(first, &r));
    assert_int_equal(fqt_u64(&r), 1);
    assert_true(fqt_wait_gone(pid, start, 5000));
    assert_int_equal(ghosts(q), 0);
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_int_equal(job_status(gate), FQ_ECANCELED);
    assert_int_not_equal(worker_pid_of(q), pid);
    fq_stats st;
    FQT_OK(fq_stats_get(q, &st));
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 1);
    fq_job_free(first);
    fq_job_free(gate);
    fq_job_free(behind);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
    fqt_assert_no_children();
}

int main(void)
{
    if (fq_func_register("cancel.gate", fqt_job_gate, NULL) ||
        fq_func_register("cancel.square", fqt_job_square, NULL) ||
        fq_func_register("cancel.mark", job_mark, NULL) ||
        fq_func_register("cancel.pid", job_pid, NULL))
        return 1;
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_wire_kind_skips),
        FQT_TEST(test_remote_kind_skips),
        FQT_TEST(test_cancelled_id_is_free),
        FQT_TEST(test_wire_kind_race),
        FQT_TEST(test_remote_kind_race),
        FQT_TEST(test_wire_kind_started_before_cancel),
    };
    return FQT_RUN(tests);
}
