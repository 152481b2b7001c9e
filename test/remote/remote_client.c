/*
 * A C client of worker servers, for the interoperability tests
 * (test/python/test_remote_interop.py), on the public API only:
 *
 *     fq_remote_client HOST:PORT N
 *
 * makes a queue with one local worker, adds a remote worker on HOST:PORT
 * (key: $FORKQUEUE_AUTHKEY or the key file), runs N "test.square" jobs and
 * checks every result. Prints "ok N remote R" (R: results computed by
 * another process than the local worker) and exits 0; or prints the error
 * of fq_queue_add_remote() on stderr and exits with its code's absolute
 * value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forkqueue.h"
#include "remote_jobs.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fq_remote_client HOST:PORT N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (register_remote_jobs())
        return 3;
    fq_queue q;
    fq_options o = {0};
    o.workers = 1;
    if (fq_queue_new(&q, &o))
        return 3;
    char err[512] = "";
    fq_remote_options ro = {0};
    ro.errbuf = err;
    ro.errbuf_size = sizeof(err);
    int rc = fq_queue_add_remote(q, argv[1], &ro);
    if (rc) {
        fprintf(stderr, "fq_queue_add_remote: %s: %s\n", fq_err_name(rc), err);
        fq_queue_free(q);
        return -rc;
    }
    pid_t local;
    fq_worker_pids(q, &local, 1);
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        if (fq_submit(q, square, &i, sizeof(i), NULL, NULL) ||
            fq_submit(q, pid, NULL, 0, NULL, NULL))
            return 4;
    }
    if (fq_wait(q, 60000))
        return 5;
    fq_result r;
    int ok = 0, remote = 0;
    while (fq_take(q, &r) == 1) {
        if (r.status) {
            fprintf(stderr, "job %llu: %s: %s\n", (unsigned long long)r.id,
                    fq_err_name(r.status), (const char *)r.data);
            return 6;
        }
        if (r.id % 2 == 0) {
            uint64_t x = r.id / 2, v;
            memcpy(&v, r.data, sizeof(v));
            ok += v == x * x + 1;
        } else {
            pid_t p;
            memcpy(&p, r.data, sizeof(p));
            remote += p != local;
        }
    }
    fq_queue_free(q);
    printf("ok %d remote %d\n", ok, remote);
    return ok == n ? 0 : 7;
}
