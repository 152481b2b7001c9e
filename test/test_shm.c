/* Shared memory blocks: fq_shm_create/attach/free. */
#include "fq_test.h"

/* Runs fn in a forked child (no asserts there); returns its exit status. */
static int in_child(int (*fn)(const char *), const char *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    return fqt_wait_child(pid);
}

static int attach_and_write(const char *name)
{
    fq_shm *b = NULL;
    if (fq_shm_attach(&b, name) != 0)
        return 1;
    unsigned char *p = fq_shm_data(b);
    if (fq_shm_size(b) != 4096 || p[0] != 7)
        return 2;
    p[1] = 9; /* seen by the creator: the same memory */
    fq_shm_free(b);
    return 0;
}

static void test_create_attach_share(void **state)
{
    (void)state;
    fq_shm *b = NULL;
    assert_int_equal(fq_shm_create(&b, 4096), 0);
    assert_non_null(fq_shm_data(b));
    assert_int_equal(fq_shm_size(b), 4096);
    const char *name = fq_shm_name(b);
    assert_int_equal(strncmp(name, "fq_", 3), 0);
    unsigned char *p = fq_shm_data(b);
    assert_int_equal(p[100], 0); /* zero-filled */
    p[0] = 7;
    assert_int_equal(in_child(attach_and_write, name), 0);
    assert_int_equal(p[1], 9);

    /* Attached here too: a second mapping of the same memory. */
    fq_shm *c = NULL;
    assert_int_equal(fq_shm_attach(&c, name), 0);
    ((unsigned char *)fq_shm_data(c))[2] = 5;
    assert_int_equal(p[2], 5);
    fq_shm_free(c);

    char copy[64];
    snprintf(copy, sizeof copy, "%s", name);
    fq_shm_free(b);
    /* Its holder let it go: attaching by name now fails cleanly. */
    fq_shm *d = NULL;
    assert_int_equal(fq_shm_attach(&d, copy), FQ_ECLOSED);
    assert_null(d);
}

static void test_nothing_in_dev_shm(void **state)
{
    (void)state;
    fq_shm *b = NULL;
    assert_int_equal(fq_shm_create(&b, 1 << 20), 0);
    DIR *dir = opendir("/dev/shm");
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL)
            assert_null(strstr(e->d_name, fq_shm_name(b) + 3));
        closedir(dir);
    }
    fq_shm_free(b);
}

static void test_bad_input(void **state)
{
    (void)state;
    fq_shm *b = (fq_shm *)&b;
    assert_int_equal(fq_shm_create(&b, 0), FQ_EINVAL);
    assert_null(b);
    assert_int_equal(fq_shm_create(NULL, 10), FQ_EINVAL);
    const char *bad[] = {"",
                         "fq_",
                         "fq_1_2_",
                         "fq_1_2_zzzzzzzzzzzz",
                         "fq_-1_2_0123456789ab",
                         "fq_1_2_0123456789abX",
                         "psm_12345",
                         "fq_1_2_0123456789a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(fq_shm_attach(&b, bad[i]), FQ_EINVAL);
    assert_int_equal(fq_shm_attach(&b, NULL), FQ_EINVAL);
    /* Well formed, but no such holder or descriptor. */
    assert_int_equal(fq_shm_attach(&b, "fq_999999999_3_0123456789ab"),
                     FQ_ECLOSED);
    /* A descriptor that is something else (stdin) is refused. */
    char name[64];
    snprintf(name, sizeof name, "fq_%ld_0_0123456789ab", (long)getpid());
    assert_int_equal(fq_shm_attach(&b, name), FQ_ECLOSED);
    assert_null(fq_shm_data(NULL));
    assert_int_equal(fq_shm_size(NULL), 0);
    assert_null(fq_shm_name(NULL));
    fq_shm_free(NULL);
}

static void test_freed_descriptor(void **state)
{
    (void)state;
    fq_shm *b = NULL;
    assert_int_equal(fq_shm_create(&b, 64), 0);
    int fd = -1;
    long pid = 0;
    char token[13];
    assert_int_equal(sscanf(fq_shm_name(b), "fq_%ld_%d_%12s", &pid, &fd, token),
                     3);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    fq_shm_free(b);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_attach_share),
        cmocka_unit_test(test_nothing_in_dev_shm),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_freed_descriptor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
