/*
 * Remote workers: jobs of a local queue run on a worker server on loopback
 * (started and stopped by each test, on a free port), mixed with local
 * workers; wrong key, no key, refused connections; a server killed in the
 * middle of a job, a time limit, fq_queue_free() with remote jobs running:
 * every job gets exactly one outcome, and nothing waits for long.
 */
#include "fq_remote_test.h"

/* A function the server does not have. */
static int job_unregistered(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)ctx;
    (void)arg;
    (void)len;
    return 0;
}

static fq_queue mixed_queue(int local, int inflight)
{
    fq_options o = {0};
    o.workers = local;
    o.inflight = inflight;
    return fqt_queue_opts(&o);
}

static void test_jobs_on_server(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fqrt_client_opts(&ro, err, sizeof(err));
    fq_queue q = mixed_queue(1, 0);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    assert_int_equal(fqrt_workers(&s), 2);
    /* Only the local worker has a pid of ours. */
    pid_t pids[8];
    assert_int_equal(fq_worker_pids(q, pids, 8), 1);

    enum { N = 2000 };
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(fqt_submit_square(q, i), i);
    FQT_OK(fq_wait(q, 60000));
    uint64_t seen = 0;
    fq_result r;
    while (fq_take(q, &r) == 1) {
        assert_int_equal(fqt_u64(&r), fqt_square(r.id));
        seen++;
    }
    assert_int_equal(seen, N);
    /* Jobs ran on both sides (dispatch shares them out; rounds until both
     * were seen, in case a busy machine skews one round). */
    int remote = 0, local = 0;
    for (int round = 0; round < 20 && !(remote && local); round++) {
        for (int i = 0; i < 500; i++)
            FQT_OK(fq_submit(q, fqt_job_pid, NULL, 0, NULL, NULL));
        FQT_OK(fq_wait(q, 60000));
        while (fq_take(q, &r) == 1) {
            assert_int_equal(r.status, 0);
            pid_t p;
            memcpy(&p, r.data, sizeof(p));
            pid_t pp = 0;
            fqp_proc_stat(p, NULL, &pp, NULL);
            remote |= pp == s.pid;
            local |= p == pids[0];
        }
    }
    assert_true(remote);
    assert_true(local);
    /* A function the server never registered is refused here. */
    FQT_EQ(fq_submit(q, job_unregistered, NULL, 0, NULL, NULL), FQ_ENOFUNC);
    /* The server's workers end with their connections. */
    fqrt_finish(q, &s);
}

static void test_add_remote_errors(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fq_queue q = mixed_queue(1, 0);

    /* Wrong key. */
    fqrt_client_opts(&ro, err, sizeof(err));
    ro.key = "wrong";
    ro.key_len = 5;
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EAUTH);
    assert_non_null(strstr(err, "rejected our key"));
    /* No key at all, and none can be made. */
    ro.key = NULL;
    ro.key_len = 0;
    char *env = getenv("FORKQUEUE_AUTHKEY");
    unsetenv("FORKQUEUE_AUTHKEY");
    setenv("XDG_CONFIG_HOME", "/dev/null/none", 1);
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EAUTH);
    assert_non_null(strstr(err, "no key"));
    unsetenv("XDG_CONFIG_HOME");
    if (env)
        setenv("FORKQUEUE_AUTHKEY", env, 1);
    /* Bad arguments. */
    fqrt_client_opts(&ro, err, sizeof(err));
    FQT_EQ(fq_queue_add_remote(q, NULL, &ro), FQ_EINVAL);
    FQT_EQ(fq_queue_add_remote(q, "127.0.0.1:notaport", &ro), FQ_EINVAL);
    fq_queue none = {0};
    FQT_EQ(fq_queue_add_remote(none, fqrt_addr(&s), &ro), FQ_EINVAL);
    /* Jobs by address still without an outcome: not now. */
    fqt_submit_square(q, 3);
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EBUSY);
    FQT_OK(fq_wait(q, 20000));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    /* Nobody listens there any more: refused at once. */
    int port = s.port;
    assert_int_equal(fqrt_stop(&s), 0);
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_ECLOSED);
    assert_non_null(strstr(err, "refused"));
    /* The remote worker went with its server; the queue goes on. */
    for (uint64_t i = 0; i < 50; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_wait(q, 20000));
    fq_result r;
    int n = 0;
    while (fq_take(q, &r) == 1) {
        if (r.id >= 1)
            assert_int_equal(fqt_u64(&r), fqt_square(r.id - 1));
        n++;
    }
    assert_int_equal(n, 51);
    (void)port;
    FQT_OK(fq_queue_free(q));
}

/* The server is killed while a remote worker runs a job: that job ends
 * with FQ_ECRASHED naming the connection, the local job is unaffected,
 * and nothing waits long. */
static void test_server_killed_mid_job(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g); /* before the server: its workers inherit it */
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fqrt_client_opts(&ro, err, sizeof(err));
    fq_queue q = mixed_queue(1, 1);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));

    uint64_t a = fqt_submit_gate(q, &g, 1, 0);
    uint64_t b = fqt_submit_gate(q, &g, 2, 0);
    pid_t p1 = fqt_gate_started(q, &g), p2 = fqt_gate_started(q, &g);
    pid_t pp = 0;
    fqp_proc_stat(p1, NULL, &pp, NULL);
    int first_remote = pp == s.pid;
    fqp_proc_stat(p2, NULL, &pp, NULL);
    assert_true(first_remote != (pp == s.pid)); /* one each */
    fqrt_kill(&s);
    int64_t t0 = fqp_now_ms();
    fq_result r;
    /* The remote job's outcome comes without the gate opening. */
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_true(fqp_now_ms() - t0 < 5000);
    assert_int_equal(r.status, FQ_ECRASHED);
    assert_non_null(strstr(r.data, "lost"));
    assert_non_null(strstr(r.data, "127.0.0.1"));
    uint64_t crashed = r.id;
    assert_true(crashed == a || crashed == b);
    fqt_gate_open(&g, 1);
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.id, crashed == a ? b : a);
    assert_int_equal(fqt_u64(&r), r.id == a ? 1 : 2);
    assert_int_equal(fq_take(q, &r), 0);
    /* More jobs run on the local worker. */
    fqt_submit_square(q, 7);
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(fqt_u64(&r), fqt_square(7));
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* Time limits and fq_queue_free() stop remote jobs too, without waiting
 * for them; the server ends their processes. */
static void test_timeout_and_free(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fqrt_client_opts(&ro, err, sizeof(err));
    fq_queue q = mixed_queue(1, 1);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));

    /* Three gated jobs with a limit: every one times out, wherever. */
    fqt_assert_gated_timeouts(q, &g, 3, 300);
    /* The remote workers went with their jobs; the local one was
     * replaced; the server's processes end. */
    fqrt_assert_workers_end(&s);
    /* A remote job running when the queue is freed. */
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    fqt_submit_gate(q, &g, 1, 0);
    fqt_submit_gate(q, &g, 2, 0);
    fqt_gate_started(q, &g);
    fqt_gate_started(q, &g);
    int64_t t0 = fqp_now_ms();
    FQT_OK(fq_queue_free(q));
    assert_true(fqp_now_ms() - t0 < 5000);
    fqrt_assert_workers_end(&s);
    assert_int_equal(fqrt_stop(&s), 0);
    fqt_gate_free(&g);
}

/* Stopping the server while clients are connected ends their workers;
 * their clients see the connection go. */
static void test_server_stop_with_clients(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fqrt_client_opts(&ro, err, sizeof(err));
    fq_queue q = mixed_queue(1, 1);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    fqt_submit_gate(q, &g, 1, 0);
    fqt_submit_gate(q, &g, 2, 0);
    fqt_gate_started(q, &g);
    fqt_gate_started(q, &g);
    int64_t t0 = fqp_now_ms();
    assert_int_equal(fqrt_stop(&s), 0); /* returns once workers are reaped */
    assert_true(fqp_now_ms() - t0 < 5000);
    fq_result r;
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.status, FQ_ECRASHED);
    fqt_gate_open(&g, 1);
    assert_int_equal(fqt_take_wait(q, &r, 10000), 1);
    assert_int_equal(r.status, 0);
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* Remote workers in the places of local ones: jobs run remotely only; when
 * the server goes, local workers come back and run what is left. */
static void test_replace_local(void **state)
{
    (void)state;
    fqt_gate g;
    fqt_gate_new(&g);
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fqrt_client_opts(&ro, err, sizeof(err));
    ro.flags = FQ_REMOTE_REPLACE_LOCAL;
    fq_queue q = mixed_queue(2, 0);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    ro.flags = 0x80;
    FQT_EQ(fq_queue_add_remote(q, fqrt_addr(&s), &ro), FQ_EINVAL);
    /* The local workers retire. */
    pid_t pids[4];
    int64_t end = fqp_now_ms() + 5000;
    while (fq_worker_pids(q, pids, 4) > 0 && fqp_now_ms() < end)
        fq_poll(q, 10); /* drives the queue: the retirement is its work */
    assert_int_equal(fq_worker_pids(q, pids, 4), 0);
    fq_result r;
    for (int i = 0; i < 200; i++)
        FQT_OK(fq_submit(q, fqt_job_pid, NULL, 0, NULL, NULL));
    FQT_OK(fq_wait(q, 30000));
    while (fq_take(q, &r) == 1) {
        assert_int_equal(r.status, 0);
        pid_t p, pp = 0;
        memcpy(&p, r.data, sizeof(p));
        fqp_proc_stat(p, NULL, &pp, NULL);
        assert_int_equal(pp, s.pid);
    }
    /* One job holds a remote worker; the server dies; more jobs wait. */
    fqt_submit_gate(q, &g, 1, 0);
    fqt_gate_started(q, &g);
    fqrt_kill(&s);
    for (uint64_t i = 0; i < 20; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_wait(q, 20000));
    int crashed = 0, ok = 0;
    while (fq_take(q, &r) == 1) {
        if (r.status == FQ_ECRASHED)
            crashed++;
        else
            ok += fqt_u64(&r) == fqt_square(r.id - 201);
    }
    assert_int_equal(crashed, 1);
    assert_int_equal(ok, 20);
    assert_int_equal(fq_worker_pids(q, pids, 4), 2); /* local again */
    FQT_OK(fq_queue_free(q));
    fqt_gate_free(&g);
}

/* fq_finish() with remote workers: every job gets its outcome, the remote
 * workers end, and their server processes with them. A job that started a
 * process of its own: it does not outlive its worker. */
static int job_spawn_sleeper(fq_ctx *ctx, const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    pid_t p = fork();
    if (p == 0) {
        setsid(); /* out of the worker's process group */
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    return fq_reply(ctx, &p, sizeof(p));
}

static void test_finish_and_job_processes(void **state)
{
    (void)state;
    fqrt_server s = fqrt_start(NULL);
    char err[512];
    fq_remote_options ro;
    fqrt_client_opts(&ro, err, sizeof(err));
    ro.flags = FQ_REMOTE_REPLACE_LOCAL;
    fq_queue q = mixed_queue(1, 0);
    FQT_OK(fq_queue_add_remote(q, fqrt_addr(&s), &ro));
    for (uint64_t i = 0; i < 100; i++)
        fqt_submit_square(q, i);
    FQT_OK(fq_submit(q, job_spawn_sleeper, NULL, 0, NULL, NULL));
    FQT_OK(fq_finish(q));
    fq_result r;
    int n = 0;
    pid_t sleeper = 0;
    while (fq_take(q, &r) == 1) {
        if (r.id < 100)
            assert_int_equal(fqt_u64(&r), fqt_square(r.id));
        else
            memcpy(&sleeper, r.data, sizeof(sleeper));
        n++;
    }
    assert_int_equal(n, 101);
    assert_true(sleeper > 0);
    /* The worker ended with its connection, and its job's process with
     * it, although it had left the worker's process group. */
    FQT_WAIT_UNTIL(fqrt_workers(&s) == 0 && kill(sleeper, 0) != 0, 5000);
    assert_int_equal(fqrt_workers(&s), 0);
    assert_int_not_equal(kill(sleeper, 0), 0);
    FQT_OK(fq_queue_free(q));
    assert_int_equal(fqrt_stop(&s), 0);
}

int main(void)
{
    if (fq_func_register("test.square", fqt_job_square, NULL) ||
        fq_func_register("test.gate", fqt_job_gate, NULL) ||
        fq_func_register("test.pid", fqt_job_pid, NULL) ||
        fq_func_register("test.spawn", job_spawn_sleeper, NULL))
        return 1;
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_jobs_on_server),
        FQT_TEST(test_add_remote_errors),
        FQT_TEST(test_server_killed_mid_job),
        FQT_TEST(test_timeout_and_free),
        FQT_TEST(test_server_stop_with_clients),
        FQT_TEST(test_replace_local),
        FQT_TEST(test_finish_and_job_processes),
    };
    return FQT_RUN(tests);
}
