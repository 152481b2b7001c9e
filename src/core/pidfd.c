/*
 * Process descriptors (Linux 5.3+): one place for the two system calls, so
 * that every layer that watches or signals a process goes through them.
 * Elsewhere, and where the kernel or a sandbox refuses them, both fail and
 * callers fall back on pids.
 */
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/internal.h"

int fq__pidfd_open(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int fq__pidfd_signal(int pidfd, int sig)
{
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
    if (pidfd >= 0)
        return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    (void)pidfd;
    (void)sig;
#endif
    errno = ENOSYS;
    return -1;
}
