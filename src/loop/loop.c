/*
 * The poll loop (see loop.h). It blocks only in poll(), with a timeout
 * computed from the nearest deadline its owner reports, so a hung or stopped
 * peer can never hang the caller beyond the limits the caller chose.
 */
#include "loop/loop.h"

#include <errno.h>
#include <limits.h>

#include "forkqueue.h"

int fq__loop_run(const fq__loop_ops *ops, void *owner, int timeout_ms,
                 int wake_fd, int flags)
{
    int64_t deadline = timeout_ms < 0
                           ? INT64_MAX
                           : fq__now_ns() + (int64_t)timeout_ms * 1000000;

    for (int pass = 0;; pass++) {
        if (ops->closing(owner))
            return FQ_ECLOSED;
        int64_t next = ops->maintain(owner);
        int satisfied = ops->satisfied(owner);
        int64_t now = fq__now_ns();
        if (pass > 0 && satisfied)
            return 0;
        if (pass > 0 && now >= deadline)
            return FQ_ETIMEDOUT;
        int nowait = satisfied || now >= deadline;
        if (deadline < next)
            next = deadline;

        struct pollfd *pfd;
        int nfd = ops->sources(owner, 1, &pfd);
        if (nfd < 0)
            return nfd;
        int nsrc = nfd;
        if (nfd == 0 && next == INT64_MAX && !nowait)
            return FQ_EBUSY; /* nothing could ever happen: never hang */
        int wake_idx = -1;
        if (wake_fd >= 0) {
            pfd[nfd].fd = wake_fd;
            pfd[nfd].events = POLLIN;
            pfd[nfd].revents = 0;
            wake_idx = nfd++;
        }

        int tmo = -1;
        if (nowait) {
            tmo = 0;
        } else if (next != INT64_MAX) {
            /* `next` may already be past: maintain() read the clock before
             * `now` did, and time goes on (slow fork hooks, load). */
            int64_t ms = (next - now + 999999) / 1000000;
            tmo = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
        }
        int n = poll(pfd, (nfds_t)nfd, tmo);
        if (n < 0) {
            if (errno == EINTR) {
                if (flags & FQ__LOOP_EINTR)
                    return FQ_EINTR;
                continue;
            }
            return FQ_ESYS;
        }
        int woken = wake_idx >= 0 && pfd[wake_idx].revents;
        if (n - woken > 0)
            ops->events(owner, pfd, nsrc, n - woken);
        if (woken)
            return ops->closing(owner) ? FQ_ECLOSED : 1;
    }
}
