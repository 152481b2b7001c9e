/*
 * Private to the fork server (forkserver.c, the caller's side and the
 * kind; forkserver_helper.c, the helper process): the messages of the
 * control socket. See forkserver.c for the protocol.
 */
#ifndef FQ_FORKSERVER_H
#define FQ_FORKSERVER_H

#include <stdint.h>
#include <sys/types.h>

enum { FS_SPAWN = 1, FS_REAP, FS_PEEK, FS_SIGQUEUE };

typedef struct fs_req {
    uint32_t op;
    int32_t pid;
    int32_t sig, value;
    uint64_t init, udata, child, hook_arg;
} fs_req;

typedef struct fs_rep {
    int32_t err;   /* 0 or an errno value */
    int32_t pid;   /* SPAWN: the worker */
    int32_t state; /* REAP, PEEK: 1 exited, 0 running, -1 not its child */
    int32_t wstatus;
} fs_rep;

/* forkserver_helper.c: the helper's loop, on its end of the control socket;
 * it ends when that socket reaches end of file or its parent changes. */
__attribute__((noreturn)) void fq__forkserver_helper_main(int fd, pid_t parent);

#endif
