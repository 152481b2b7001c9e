/*
 * Fault-injection points, as SQLite's test builds have them: places where a
 * test can stop the library between two steps to drive a race window that
 * is otherwise microseconds wide. They exist only when the library is
 * compiled with FQ_FAULT_INJECTION defined (a copy built for one test,
 * never the installed library); otherwise FQ__FAULT() is nothing.
 */
#ifndef FQ_CORE_FAULT_H
#define FQ_CORE_FAULT_H

enum {
    /* check_timeouts() decided to kill a worker for its job's time limit
     * and is about to signal it (arg: the worker's pid). */
    FQ__FAULT_TIMEOUT_KILL = 1,
};

#ifdef FQ_FAULT_INJECTION
/* Set by the test; called at each point with the point and its argument. */
extern void (*fq__fault_hook)(int point, long arg);
#define FQ__FAULT(point, arg)                                                  \
    do {                                                                       \
        if (fq__fault_hook)                                                    \
            fq__fault_hook((point), (long)(arg));                              \
    } while (0)
#else
#define FQ__FAULT(point, arg) ((void)0)
#endif

#endif
