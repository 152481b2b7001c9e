/*
 * Two queues, a channel and the program's own pipe, all waited on by one
 * plain poll(): the loop object hands that poll() one descriptor and one
 * timeout, as an event loop (asyncio, libuv) would be handed them. Results
 * arrive in whatever order; the program prints a summary at the end.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forkqueue.h"

#define N 20

static int power(fq_ctx *ctx, const void *arg, size_t len)
{
    long x[2]; /* base, exponent */
    if (len != sizeof x)
        return fq_fail(ctx, 1, "bad argument");
    memcpy(x, arg, sizeof x);
    long r = 1;
    for (long k = 0; k < x[1]; k++)
        r *= x[0];
    return fq_reply(ctx, &r, sizeof r);
}

/* The channel's child: answers every message with its length. */
static int lengths(fq_channel ch, void *arg)
{
    (void)arg;
    fq_msg m;
    while (fq_channel_recv(ch, &m, -1) == 1) {
        long n = (long)m.len;
        fq_msg_free(&m);
        if (fq_channel_send(ch, &n, sizeof n) != 0)
            return 1;
    }
    return 0;
}

int main(void)
{
    fq_options o = {0};
    o.workers = 2;
    fq_queue sq, cu;
    fq_channel ch;
    fq_loop *loop;
    int own[2];
    if (fq_queue_new(&sq, &o) || fq_queue_new(&cu, &o) ||
        fq_channel_start(&ch, lengths, NULL, NULL) ||
        fq_loop_new(&loop, NULL) || pipe(own) != 0)
        return 1;
    long sums[2] = {0, 0};
    int results[2] = {0, 0}, replies = 0, timer = 0, lines = 0;
    long replied = 0;
    fq_loop_add_queue(loop, sq, &sums[0]);
    fq_loop_add_queue(loop, cu, &sums[1]);
    fq_loop_add_channel(loop, ch, NULL);
    fq_loop_timer(loop, 50, NULL, NULL, NULL);

    for (long i = 1; i <= N; i++) {
        long a[2] = {i, 2}, b[2] = {i, 3};
        fq_submit(sq, power, a, sizeof a, NULL, NULL);
        fq_submit(cu, power, b, sizeof b, NULL, NULL);
    }
    const char *words[] = {"hello", "loop", "!"};
    for (int i = 0; i < 3; i++)
        fq_channel_send(ch, words[i], strlen(words[i]));
    if (write(own[1], "tick\n", 5) != 5)
        return 1;

    int fd = fq_loop_fd(loop);
    while (results[0] < N || results[1] < N || replies < 3 || !timer ||
           !lines) {
        int ms;
        fq_loop_timeout(loop, &ms); /* before every wait */
        struct pollfd p[2] = {{fd, POLLIN, 0}, {own[0], POLLIN, 0}};
        if (poll(p, 2, ms) < 0)
            return 1;
        if (p[1].revents) { /* the program's own descriptor */
            char buf[16];
            if (read(own[0], buf, sizeof buf) > 0)
                lines++;
        }
        fq_loop_event ev[8];
        int n = fq_loop_process(loop, ev, 8);
        for (int i = 0; i < n; i++) {
            if (ev[i].type == FQ_LOOP_TIMER) {
                timer = 1;
            } else if (ev[i].type == FQ_LOOP_QUEUE) {
                fq_queue q = {(uint32_t)ev[i].id};
                int k = ev[i].udata == &sums[0] ? 0 : 1;
                fq_result r;
                while (fq_take(q, &r) == 1) {
                    sums[k] += *(const long *)r.data;
                    results[k]++;
                }
            } else if (ev[i].type == FQ_LOOP_CHANNEL) {
                fq_msg m;
                while (fq_channel_ready(ch) == 1 &&
                       fq_channel_recv(ch, &m, 0) == 1) {
                    replied += *(long *)m.data;
                    replies++;
                    fq_msg_free(&m);
                }
            }
        }
    }
    printf("squares: %d results, sum %ld\n", results[0], sums[0]);
    printf("cubes: %d results, sum %ld\n", results[1], sums[1]);
    printf("channel: %d replies, %ld bytes\n", replies, replied);
    printf("own pipe: %d line\n", lines);
    printf("timer: %s\n", timer ? "fired" : "not fired");

    fq_loop_free(loop);
    fq_channel_close(ch);
    fq_channel_wait(ch, NULL, -1);
    fq_channel_free(ch);
    fq_queue_free(sq);
    fq_queue_free(cu);
    close(own[0]);
    close(own[1]);
    return 0;
}
