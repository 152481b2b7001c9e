/*
 * The 10x10 grid of i*N+j computed by children, at most four at a time:
 * public channels and an exchange. Each child gets its cell through fork
 * (the argument pointer), sends one message and ends; the parent fills the
 * grid as messages arrive, in whatever order, and prints it.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "forkqueue.h"

#define N 10

struct cell {
    int i, j, value;
};

static int compute(fq_channel ch, void *arg)
{
    struct cell c = *(struct cell *)arg;
    struct timespec ts = {0, 5 * 1000 * 1000}; /* stands for real work */
    nanosleep(&ts, NULL);
    c.value = c.i * N + c.j;
    return fq_channel_send(ch, &c, sizeof c) == 0 ? 0 : 1;
}

int main(void)
{
    static struct cell cells[N * N];
    int grid[N][N];
    fq_exchange *ex;
    fq_exchange_options o = {0};
    o.limit = 4;
    if (fq_exchange_new(&ex, &o) != 0)
        return 1;
    for (int k = 0; k < N * N; k++) {
        cells[k] = (struct cell){k / N, k % N, -1};
        if (fq_exchange_start(ex, compute, &cells[k], NULL) < 0)
            return 1;
    }
    fq_exchange_event ev[8];
    int n, failures = 0;
    while ((n = fq_exchange_ready(ex, ev, 8, -1)) > 0) {
        for (int k = 0; k < n; k++) {
            if (ev[k].error) { /* could not fork */
                failures++;
                continue;
            }
            if (ev[k].ended) { /* removed from the exchange, reaped */
                if (!WIFEXITED(ev[k].status) || WEXITSTATUS(ev[k].status))
                    failures++;
                fq_channel_free(ev[k].ch);
                continue;
            }
            fq_msg m;
            if (fq_channel_recv(ev[k].ch, &m, 0) == 1) {
                struct cell c;
                memcpy(&c, m.data, sizeof c);
                grid[c.i][c.j] = c.value;
                fq_msg_free(&m);
            }
        }
    }
    fq_exchange_free(ex);
    if (n < 0 || failures) {
        fprintf(stderr, "exchange_grid: %s, %d failures\n", fq_strerror(n),
                failures);
        return 1;
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            printf("%d%c", grid[i][j], j == N - 1 ? '\n' : ' ');
    return 0;
}
