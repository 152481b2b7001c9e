/*
 * Public channels: messages both ways, end of stream, exit statuses,
 * timeouts, signals, bad bytes from the peer, hygiene of the child, misuse
 * of handles, and reaping of freed channels' children.
 *
 * Children never assert: they report through their exit status or a
 * message, and the parent checks.
 */
#include "fq_test.h"

#include <sys/socket.h>
#include <sys/time.h>

#define BAD 99 /* exit status of a child whose own check failed */

static int child_exit_code(int st)
{
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static int wait_code(fq_channel ch)
{
    int st = 0;
    FQT_OK(fq_channel_wait(ch, &st, 10000));
    return child_exit_code(st);
}

/* Child: echoes every message until the end of the stream. */
static int echo_main(fq_channel ch, void *arg)
{
    (void)arg;
    for (;;) {
        fq_msg m;
        int rc = fq_channel_recv(ch, &m, -1);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return BAD;
        rc = fq_channel_send(ch, m.data, m.len);
        fq_msg_free(&m);
        if (rc < 0)
            return BAD + 1;
    }
}

static void test_echo_sizes(void **state)
{
    (void)state;
    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, echo_main, NULL, NULL));
    assert_true(fq_channel_pid(ch) > 0);
    const size_t sizes[] = {0,     1,     31,      32,           4096,
                            65535, 65536, 1 << 20, (8 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        unsigned char *buf = malloc(n ? n : 1);
        fqt_fill(buf, n, i);
        FQT_OK(fq_channel_send(ch, buf, n));
        fq_msg m = {0};
        FQT_EQ(fq_channel_recv(ch, &m, 10000), 1);
        assert_int_equal(m.len, n);
        assert_int_equal(fqt_check(m.data, m.len, i), n);
        if (n == 0)
            assert_null(m.data);
        fq_msg_free(&m);
        assert_null(m.data);
        free(buf);
    }
    FQT_OK(fq_channel_close(ch));
    FQT_OK(fq_channel_close(ch)); /* idempotent */
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));
}

/* Child: sends n numbered messages, then exits with 7. */
static int count_main(fq_channel ch, void *arg)
{
    uint32_t n = *(uint32_t *)arg;
    for (uint32_t i = 0; i < n; i++)
        if (fq_channel_send(ch, &i, sizeof i) < 0)
            return BAD;
    return 7;
}

static void test_many_in_order_then_eof(void **state)
{
    (void)state;
    uint32_t n = 100000;
    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, count_main, &n, NULL));
    for (uint32_t i = 0; i < n; i++) {
        fq_msg m;
        FQT_EQ(fq_channel_recv(ch, &m, 10000), 1);
        assert_int_equal(m.len, sizeof(uint32_t));
        uint32_t v;
        memcpy(&v, m.data, sizeof v);
        assert_int_equal(v, i);
        fq_msg_free(&m);
    }
    fq_msg m;
    FQT_EQ(fq_channel_recv(ch, &m, 10000), 0); /* end of stream */
    FQT_EQ(fq_channel_recv(ch, &m, 0), 0);     /* and stays so */
    FQT_EQ(fq_channel_ready(ch), 1);
    assert_int_equal(wait_code(ch), 7);
    int st = 0;
    FQT_OK(fq_channel_wait(ch, &st, 0)); /* reaped: same status again */
    assert_int_equal(child_exit_code(st), 7);
    FQT_OK(fq_channel_kill(ch, SIGKILL)); /* no-op once reaped */
    FQT_OK(fq_channel_free(ch));
    FQT_EQ(fq_channel_pid(ch), FQ_ECLOSED);
}

/* fq_channel_fork: both processes return; the child continues here. */
static void test_fork_style(void **state)
{
    (void)state;
    fq_channel ch = {0};
    pid_t me = getpid();
    FQT_OK(fq_channel_fork(&ch, NULL));
    if (fq_channel_pid(ch) == 0) {
        int ok = getppid() == me && getpgrp() == getpid();
        fq_channel_send(ch, &ok, sizeof ok);
        fq_channel_free(ch);
        _exit(ok ? 3 : BAD);
    }
    fq_msg m;
    FQT_EQ(fq_channel_recv(ch, &m, 10000), 1);
    assert_int_equal(*(int *)m.data, 1);
    fq_msg_free(&m);
    assert_int_equal(wait_code(ch), 3);
    FQT_OK(fq_channel_free(ch));
}

static int sleep_main(fq_channel ch, void *arg)
{
    (void)arg;
    (void)ch;
    for (;;)
        pause();
    return 0;
}

static void test_timeouts_and_kill(void **state)
{
    (void)state;
    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, sleep_main, NULL, NULL));
    fq_msg m;
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_channel_recv(ch, &m, 100), FQ_ETIMEDOUT);
    int64_t dt = fqp_now_ms() - t0;
    assert_true(dt >= 90 && dt < 5000);
    FQT_EQ(fq_channel_recv(ch, &m, 0), FQ_ETIMEDOUT);
    FQT_EQ(fq_channel_ready(ch), 0);
    int st;
    FQT_EQ(fq_channel_wait(ch, &st, 50), FQ_ETIMEDOUT);
    FQT_EQ(fq_channel_wait(ch, &st, 0), FQ_ETIMEDOUT);
    /* The child has its own group: killing it never reaches us. */
    pid_t pid = fq_channel_pid(ch);
    assert_int_equal(getpgid(pid), pid);
    assert_int_not_equal(getpgid(pid), getpgrp());
    FQT_OK(fq_channel_kill(ch, SIGTERM));
    assert_int_equal(wait_code(ch), 1000 + SIGTERM);
    FQT_EQ(fq_channel_recv(ch, &m, 1000), 0); /* its end closed with it */
    FQT_OK(fq_channel_free(ch));
}

/* Child: writes raw bytes into its end, then exits. */
static int raw_main(fq_channel ch, void *arg)
{
    const char *which = arg;
    int fd = fq_channel_fd(ch);
    if (strcmp(which, "garbage") == 0) {
        const char junk[64] = "Traceback (most recent call last):\n";
        return write(fd, junk, sizeof junk) == sizeof junk ? 0 : BAD;
    }
    /* A valid message, then half of the next frame. */
    if (fq_channel_send(ch, "ok", 2) < 0)
        return BAD;
    unsigned char hdr[32] = {0x71, 0x66, 2 /* wire version */, 4};
    hdr[24] = 100; /* 100 payload bytes announced, 10 sent */
    if (write(fd, hdr, sizeof hdr) != sizeof hdr)
        return BAD;
    return write(fd, "0123456789", 10) == 10 ? 0 : BAD;
}

static void test_bad_bytes(void **state)
{
    (void)state;
    fq_channel ch = {0};
    fq_msg m;
    FQT_OK(fq_channel_start(&ch, raw_main, "garbage", NULL));
    FQT_EQ(fq_channel_recv(ch, &m, 10000), FQ_EPROTO);
    FQT_EQ(fq_channel_recv(ch, &m, 10000), FQ_EPROTO); /* sticky */
    FQT_EQ(fq_channel_ready(ch), 1);
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));

    FQT_OK(fq_channel_start(&ch, raw_main, "truncated", NULL));
    FQT_EQ(fq_channel_recv(ch, &m, 10000), 1);
    assert_int_equal(m.len, 2);
    assert_memory_equal(m.data, "ok", 2);
    fq_msg_free(&m);
    FQT_EQ(fq_channel_recv(ch, &m, 10000), FQ_EPROTO);
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));
}

static int send_big_main(fq_channel ch, void *arg)
{
    (void)arg;
    static char big[200000];
    return fq_channel_send(ch, big, sizeof big) == 0 ? 0 : BAD;
}

static void test_max_msg(void **state)
{
    (void)state;
    fq_channel ch = {0};
    fq_channel_options o = {0};
    o.max_msg_bytes = 1000;
    FQT_OK(fq_channel_start(&ch, send_big_main, NULL, &o));
    fq_msg m;
    FQT_EQ(fq_channel_recv(ch, &m, 10000), FQ_ETOOBIG);
    FQT_OK(fq_channel_close(ch)); /* the child's send fails: unblocked */
    int code = wait_code(ch);
    assert_true(code == 0 || code == BAD);
    FQT_OK(fq_channel_free(ch));
}

static int exit_at_once_main(fq_channel ch, void *arg)
{
    (void)ch;
    (void)arg;
    return 0;
}

static void test_send_to_gone_peer(void **state)
{
    (void)state;
    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, exit_at_once_main, NULL, NULL));
    assert_int_equal(wait_code(ch), 0);
    /* No SIGPIPE (it would end this test program): an error code. */
    static char buf[1 << 16];
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++)
        rc = fq_channel_send(ch, buf, sizeof buf);
    FQT_EQ(rc, FQ_ECLOSED);
    FQT_OK(fq_channel_free(ch));
}

/* Child: checks that it holds exactly one socket (its own end: the other
 * channel's end and the queue's workers' ends are closed), that the
 * inherited handle is dead here, and that its descriptor is close-on-exec. */
struct hyg_arg {
    fq_channel other;
};

static int count_sockets(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, target, sizeof target - 1);
        if (k > 0) {
            target[k] = 0;
            if (strncmp(target, "socket:", 7) == 0)
                n++;
        }
    }
    closedir(d);
    return n;
}

static int hygiene_main(fq_channel ch, void *arg)
{
    struct hyg_arg *a = arg;
    int res[4];
    res[0] = count_sockets();
    res[1] = fq_channel_send(a->other, "x", 1);
    res[2] = fcntl(fq_channel_fd(ch), F_GETFD) & FD_CLOEXEC;
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    res[3] = sigismember(&cur, SIGTERM);
    return fq_channel_send(ch, res, sizeof res) == 0 ? 0 : BAD;
}

static void test_child_hygiene(void **state)
{
    (void)state;
    fq_queue q = fqt_queue(2, 0);
    struct hyg_arg a;
    FQT_OK(fq_channel_start(&a.other, sleep_main, NULL, NULL));
    fq_channel ch = {0};
    /* A mask and a handler in the parent must not reach the child. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    FQT_OK(fq_channel_start(&ch, hygiene_main, &a, NULL));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fq_msg m;
    FQT_EQ(fq_channel_recv(ch, &m, 10000), 1);
    int res[4];
    assert_int_equal(m.len, sizeof res);
    memcpy(res, m.data, sizeof res);
    fq_msg_free(&m);
    assert_int_equal(res[0], 1);
    assert_int_equal(res[1], FQ_ECLOSED);
    assert_int_not_equal(res[2], 0);
    assert_int_equal(res[3], 0);
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));
    FQT_OK(fq_channel_kill(a.other, SIGKILL));
    assert_int_equal(wait_code(a.other), 1000 + SIGKILL);
    FQT_OK(fq_channel_free(a.other));
    FQT_OK(fq_queue_free(q));
}

/* A queue's workers forked after a channel do not hold its descriptor, so
 * closing the channel is an end of stream for the child at once. */
static void test_workers_do_not_hold_channels(void **state)
{
    (void)state;
    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, echo_main, NULL, NULL));
    fq_queue q = fqt_queue(2, 0);
    FQT_OK(fq_channel_close(ch));
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));
    FQT_OK(fq_queue_free(q));
}

static void test_misuse(void **state)
{
    (void)state;
    fq_channel zero = {0}, bogus = {0x7ffffff0};
    fq_msg m;
    FQT_EQ(fq_channel_fork(NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_channel_start(NULL, echo_main, NULL, NULL), FQ_EINVAL);
    FQT_EQ(fq_channel_send(zero, "a", 1), FQ_EINVAL);
    FQT_EQ(fq_channel_recv(zero, &m, 0), FQ_EINVAL);
    FQT_EQ(fq_channel_send(bogus, "a", 1), FQ_ECLOSED);
    FQT_EQ(fq_channel_free(bogus), FQ_ECLOSED);
    FQT_EQ(fq_channel_cleanup(-1, 0), FQ_EINVAL);
    fq_msg_free(NULL);

    fq_channel ch = {0};
    FQT_OK(fq_channel_start(&ch, echo_main, NULL, NULL));
    FQT_EQ(fq_channel_send(ch, NULL, 3), FQ_EINVAL);
    FQT_EQ(fq_channel_recv(ch, NULL, 0), FQ_EINVAL);
    FQT_EQ(fq_channel_kill(ch, -1), FQ_EINVAL);
    FQT_EQ(fq_channel_kill(ch, 100000), FQ_EINVAL);
    FQT_OK(fq_channel_kill(ch, 0)); /* probe */
    FQT_OK(fq_channel_close(ch));
    FQT_EQ(fq_channel_send(ch, "a", 1), FQ_ECLOSED);
    FQT_EQ(fq_channel_recv(ch, &m, 0), FQ_ECLOSED);
    FQT_EQ(fq_channel_fd(ch), FQ_ECLOSED);
    FQT_EQ(fq_channel_ready(ch), 1); /* recv answers at once */
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));
    FQT_EQ(fq_channel_free(ch), FQ_ECLOSED);
    FQT_EQ(fq_channel_wait(ch, NULL, 0), FQ_ECLOSED);
}

/* The child's end: wait and kill make no sense there. */
static void test_child_end_misuse(void **state)
{
    (void)state;
    fq_channel ch = {0};
    FQT_OK(fq_channel_fork(&ch, NULL));
    if (fq_channel_pid(ch) == 0) {
        int ok = fq_channel_wait(ch, NULL, 0) == FQ_EINVAL &&
                 fq_channel_kill(ch, SIGTERM) == FQ_EINVAL;
        _exit(ok ? 0 : BAD);
    }
    assert_int_equal(wait_code(ch), 0);
    FQT_OK(fq_channel_free(ch));
}

static void test_free_running_then_cleanup(void **state)
{
    (void)state;
    int zombies = 0;
    fq_channel a = {0}, b = {0};
    /* a ends by itself once its channel is closed; b never does. */
    FQT_OK(fq_channel_start(&a, echo_main, NULL, NULL));
    FQT_OK(fq_channel_start(&b, sleep_main, NULL, NULL));
    pid_t pa = fq_channel_pid(a), pb = fq_channel_pid(b);
    FQT_OK(fq_channel_free(a));
    FQT_OK(fq_channel_free(b));
    int64_t end = fqp_now_ms() + 10000;
    while (fq_channel_cleanup(0, 0) > 1 && fqp_now_ms() < end)
        poll(NULL, 0, 5);
    FQT_EQ(fq_channel_cleanup(0, 0), 1); /* b is still running */
    assert_int_equal(kill(pb, 0), 0);
    FQT_EQ(fq_channel_cleanup(SIGKILL, 10000), 0);
    assert_int_equal(fqt_count_children(&zombies), 0);
    assert_int_equal(zombies, 0);
    (void)pa;
}

static volatile sig_atomic_t got_alarm;
static void on_alarm(int s)
{
    (void)s;
    got_alarm = 1;
}

static void test_return_on_eintr(void **state)
{
    (void)state;
    struct sigaction sa, olds;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, &olds);
    fq_channel ch = {0};
    fq_channel_options o = {0};
    o.return_on_eintr = 1;
    FQT_OK(fq_channel_start(&ch, sleep_main, NULL, &o));
    struct itimerval it = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    fq_msg m;
    FQT_EQ(fq_channel_recv(ch, &m, 10000), FQ_EINTR);
    assert_true(got_alarm);
    setitimer(ITIMER_REAL, &it, NULL);
    FQT_EQ(fq_channel_wait(ch, NULL, 10000), FQ_EINTR);
    sigaction(SIGALRM, &olds, NULL);
    FQT_OK(fq_channel_kill(ch, SIGKILL));
    assert_int_equal(wait_code(ch), 1000 + SIGKILL);
    FQT_OK(fq_channel_free(ch));
}

/* A child that dies with the process that forked it (PDEATHSIG). */
static void test_dies_with_parent(void **state)
{
    (void)state;
    int fds[2];
    fqt_pipe(fds);
    pid_t mid = fork();
    if (mid == 0) {
        fq_channel ch;
        close(fds[0]);
        if (fq_channel_start(&ch, sleep_main, NULL, NULL) < 0)
            _exit(BAD);
        pid_t p = fq_channel_pid(ch);
        if (write(fds[1], &p, sizeof p) != sizeof p)
            _exit(BAD);
        for (;;)
            pause();
    }
    close(fds[1]);
    pid_t grandchild;
    assert_int_equal(fqt_read_all(fds[0], &grandchild, sizeof grandchild), 0);
    close(fds[0]);
    unsigned long long start = fqt_proc_start(grandchild);
    kill(mid, SIGKILL);
    assert_int_equal(fqt_wait_child(mid), 1000 + SIGKILL);
    assert_int_equal(fqt_wait_gone(grandchild, start, 10000), 1);
}

/* ---- exchanges ---------------------------------------------------------- */

/* Child: sends its index `count` times, then exits with index % 200. */
struct xarg {
    int index;
    int count;
};

static int indexed_main(fq_channel ch, void *arg)
{
    const struct xarg *a = arg;
    for (int i = 0; i < a->count; i++)
        if (fq_channel_send(ch, &a->index, sizeof a->index) < 0)
            return BAD;
    return a->index % 200;
}

/* Runs an exchange to the end; checks every message arrived before its
 * channel ended, statuses, the limit, and that no process is left. */
static void run_exchange(int nwork, int limit, int count)
{
    fq_exchange *ex = NULL;
    fq_exchange_options o = {0};
    o.limit = limit;
    FQT_OK(fq_exchange_new(&ex, &o));
    struct xarg *args = calloc((size_t)nwork, sizeof *args);
    int *got = calloc((size_t)nwork, sizeof *got);
    int *ended = calloc((size_t)nwork, sizeof *ended);
    int started = 0, queued = 0;
    for (int i = 0; i < nwork; i++) {
        args[i] = (struct xarg){i, count};
        fq_channel ch;
        int rc = fq_exchange_start(ex, indexed_main, &args[i], &ch);
        assert_true(rc == 0 || rc == 1);
        if (rc == 0)
            started++;
        else {
            queued++;
            assert_int_equal(ch.id, 0);
        }
    }
    assert_int_equal(started, limit && limit < nwork ? limit : nwork);
    assert_int_equal(fq_exchange_waiting(ex), queued);
    int nended = 0, order = 0;
    fq_exchange_event ev[16];
    while (nended < nwork) {
        int n = fq_exchange_ready(ex, ev, 16, 10000);
        assert_true(n > 0);
        assert_true(limit == 0 || fq_exchange_active(ex) <= limit);
        for (int k = 0; k < n; k++) {
            struct xarg *a = ev[k].udata;
            assert_int_equal(ev[k].error, 0);
            if (ev[k].ended) {
                assert_int_equal(got[a->index], count);
                assert_false(ended[a->index]);
                ended[a->index] = 1;
                assert_true(WIFEXITED(ev[k].status));
                assert_int_equal(WEXITSTATUS(ev[k].status), a->index % 200);
                FQT_OK(fq_channel_free(ev[k].ch));
                nended++;
                continue;
            }
            fq_msg m;
            FQT_EQ(fq_channel_recv(ev[k].ch, &m, 0), 1);
            int v;
            memcpy(&v, m.data, sizeof v);
            fq_msg_free(&m);
            assert_int_equal(v, a->index);
            if (limit == 1 && got[a->index] == 0)
                assert_int_equal(a->index, order++); /* first in, first out */
            got[a->index]++;
        }
    }
    assert_int_equal(fq_exchange_active(ex), 0);
    assert_int_equal(fq_exchange_waiting(ex), 0);
    FQT_EQ(fq_exchange_ready(ex, ev, 16, -1), 0); /* nothing left: no wait */
    FQT_EQ(fq_exchange_free(ex), 0);
    int zombies = -1;
    assert_int_equal(fqt_count_children(&zombies), 0);
    assert_int_equal(zombies, 0);
    free(args);
    free(got);
    free(ended);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static void test_exchange_fifo_with_limit_one(void **state)
{
    (void)state;
    run_exchange(6, 1, 3);
}

static void test_exchange_500_children_limit_8(void **state)
{
    (void)state;
    int fds = count_fds();
    run_exchange(500, 8, 2);
    assert_int_equal(count_fds(), fds);
}

static void test_exchange_no_limit_all_data_before_end(void **state)
{
    (void)state;
    run_exchange(4, 0, 20000);
}

static void test_exchange_add_remove_timeout(void **state)
{
    (void)state;
    fq_exchange *ex = NULL;
    fq_exchange_options bad = {0};
    bad.limit = -1;
    FQT_EQ(fq_exchange_new(&ex, &bad), FQ_EINVAL);
    FQT_EQ(fq_exchange_new(NULL, NULL), FQ_EINVAL);
    FQT_OK(fq_exchange_new(&ex, NULL));
    fq_exchange_event ev[4];
    FQT_EQ(fq_exchange_ready(ex, ev, 4, -1), 0); /* empty: at once */
    FQT_EQ(fq_exchange_ready(ex, ev, 0, 0), FQ_EINVAL);
    FQT_EQ(fq_exchange_start(ex, NULL, NULL, NULL), FQ_EINVAL);

    fq_channel a = {0}, b = {0};
    FQT_OK(fq_channel_start(&a, sleep_main, NULL, NULL));
    FQT_OK(fq_channel_start(&b, echo_main, NULL, NULL));
    FQT_OK(fq_exchange_add(ex, a, &a));
    FQT_EQ(fq_exchange_add(ex, a, &a), FQ_EINVAL); /* already watched */
    FQT_OK(fq_exchange_add(ex, b, &b));
    assert_int_equal(fq_exchange_active(ex), 2);
    int64_t t0 = fqp_now_ms();
    FQT_EQ(fq_exchange_ready(ex, ev, 4, 100), 0);
    assert_true(fqp_now_ms() - t0 >= 90);
    FQT_OK(fq_channel_send(b, "hi", 2));
    FQT_EQ(fq_exchange_ready(ex, ev, 4, 10000), 1);
    assert_int_equal(ev[0].ch.id, b.id);
    assert_ptr_equal(ev[0].udata, &b);
    assert_int_equal(ev[0].ended, 0);
    /* Level-triggered: still ready until received. */
    FQT_EQ(fq_exchange_ready(ex, ev, 4, 0), 1);
    fq_msg m;
    FQT_EQ(fq_channel_recv(b, &m, 0), 1);
    fq_msg_free(&m);
    FQT_OK(fq_channel_close(b)); /* b's child sees the end and exits */
    FQT_EQ(fq_exchange_ready(ex, ev, 4, 10000), 1);
    assert_int_equal(ev[0].ch.id, b.id);
    assert_int_equal(ev[0].ended, 1);
    assert_true(WIFEXITED(ev[0].status));
    FQT_EQ(fq_exchange_remove(ex, b), FQ_EINVAL); /* already removed */
    FQT_OK(fq_exchange_remove(ex, a));
    assert_int_equal(fq_exchange_active(ex), 0);
    FQT_EQ(fq_exchange_free(ex), 0);
    FQT_OK(fq_channel_free(b));
    FQT_OK(fq_channel_kill(a, SIGKILL));
    assert_int_equal(wait_code(a), 1000 + SIGKILL);
    FQT_OK(fq_channel_free(a));
}

static void test_exchange_free_drops_waiting(void **state)
{
    (void)state;
    fq_exchange *ex = NULL;
    fq_exchange_options o = {0};
    o.limit = 1;
    FQT_OK(fq_exchange_new(&ex, &o));
    fq_channel ch;
    FQT_EQ(fq_exchange_start(ex, sleep_main, NULL, &ch), 0);
    FQT_EQ(fq_exchange_start(ex, sleep_main, NULL, NULL), 1);
    FQT_EQ(fq_exchange_start(ex, sleep_main, NULL, NULL), 1);
    FQT_EQ(fq_exchange_free(ex), 2);
    FQT_OK(fq_channel_kill(ch, SIGKILL));
    assert_int_equal(wait_code(ch), 1000 + SIGKILL);
    FQT_OK(fq_channel_free(ch));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FQT_TEST(test_echo_sizes),
        FQT_TEST(test_many_in_order_then_eof),
        FQT_TEST(test_fork_style),
        FQT_TEST(test_timeouts_and_kill),
        FQT_TEST(test_bad_bytes),
        FQT_TEST(test_max_msg),
        FQT_TEST(test_send_to_gone_peer),
        FQT_TEST(test_child_hygiene),
        FQT_TEST(test_workers_do_not_hold_channels),
        FQT_TEST(test_misuse),
        FQT_TEST(test_child_end_misuse),
        FQT_TEST(test_free_running_then_cleanup),
        FQT_TEST(test_return_on_eintr),
        FQT_TEST(test_dies_with_parent),
        FQT_TEST(test_exchange_fifo_with_limit_one),
        FQT_TEST(test_exchange_500_children_limit_8),
        FQT_TEST(test_exchange_no_limit_all_data_before_end),
        FQT_TEST(test_exchange_add_remove_timeout),
        FQT_TEST(test_exchange_free_drops_waiting),
    };
    return FQT_RUN(tests);
}
