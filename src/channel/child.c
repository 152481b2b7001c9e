/*
 * The hygiene of every forked child, public channels and workers alike
 * (the worker layer adds its own on top: worker/tree.c). It sits in the
 * channel layer, the lowest that forks, so that the worker layer above
 * calls down into it and never the other way.
 *
 * As git's run-command and musl's posix_spawn: the caller blocks every
 * signal around fork() so that no handler of the parent runs in the child
 * before dispositions are reset; the child then closes every channel it
 * inherited except its own, joins a process group of its own and asks to be
 * killed with its parent, before any user code runs.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "channel/chan_public.h"
#include "core/internal.h"

/* The hygiene of every forked child (workers, public channels). Runs with every
 * signal blocked. `keep` is the one worker descriptor the child keeps (a
 * worker's own end of its channel), or -1. */
void fq__child_hygiene_keep(int parent_end, int keep, pid_t parent)
{
    /* Default dispositions, as a new process would have (SIG_IGN is kept
     * except for the signals we rely on or a job may wait on). */
    for (int s = 1; s < NSIG; s++) {
        struct sigaction sa;
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        if (sigaction(s, NULL, &sa) < 0)
            continue;
        if (sa.sa_handler == SIG_IGN && s != SIGTERM && s != SIGINT &&
            s != SIGCHLD && s != SIGHUP)
            continue;
        if (sa.sa_handler == SIG_DFL && !(sa.sa_flags & SA_SIGINFO))
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(s, &sa, NULL);
    }
    /* Every worker channel and pidfd of every queue of this process
     * (the parent's end of a worker's own channel among them): only `keep`
     * stays. */
    fq__fds_child_keep_only(keep);
    close(parent_end); /* a public channel's; already closed for a worker */
    fq__chan_forget_inherited();
    setpgid(0, 0);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    /* The parent may have died before PDEATHSIG was armed. */
    if (getppid() != parent)
        _exit(120 /* as a worker whose channel failed */);
}

void fq__child_hygiene(int parent_end, pid_t parent)
{
    fq__child_hygiene_keep(parent_end, -1, parent);
}
