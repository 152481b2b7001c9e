/* Where the key comes from (auth.h): the argument, $FORKQUEUE_AUTHKEY, or
 * the per-user key file, with the rules of python/forkqueue/_auth.py. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "core/internal.h"

int fq__auth_key_path(char *buf, size_t n)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    int r;

    if (xdg && *xdg) {
        r = snprintf(buf, n, "%s/forkqueue/authkey", xdg);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(geteuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home || !*home)
            return FQ_EINVAL;
        r = snprintf(buf, n, "%s/.config/forkqueue/authkey", home);
    }
    return r > 0 && (size_t)r < n ? 0 : FQ_EINVAL;
}

static int set_key(fq__key *key, const void *data, size_t len)
{
    key->data = malloc(len ? len : 1);
    if (!key->data)
        return FQ_ENOMEM;
    memcpy(key->data, data, len);
    key->len = len;
    return 0;
}

void fq__key_free(fq__key *key)
{
    if (key->data) {
        OPENSSL_cleanse(key->data, key->len);
        free(key->data);
    }
    key->data = NULL;
    key->len = 0;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* Reads the key file: 1 with the key (whitespace around it stripped, as
 * Python's bytes.strip()), 0 when it is empty, -1 when missing, FQ_EAUTH
 * when refused. */
static int read_key_file(const char *path, fq__key *key, char *err, size_t errn)
{
    unsigned char buf[FQ__AUTH_KEY_MAX];
    struct stat st;
    int fd;

    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        if (errno == ENOENT)
            return -1;
        snprintf(err, errn,
                 "no key: %s is not set and the key file %s cannot be read "
                 "(%s)",
                 FQ__AUTH_ENV, path, strerror(errno));
        return FQ_EAUTH;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errn, "key file %s is not a regular file", path);
        close(fd);
        return FQ_EAUTH;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errn, "key file %s belongs to another user (uid %ld)",
                 path, (long)st.st_uid);
        close(fd);
        return FQ_EAUTH;
    }
    if (st.st_mode & 077) {
        snprintf(err, errn,
                 "key file %s can be read by others (mode %04o); refusing "
                 "it: run chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return FQ_EAUTH;
    }
    size_t have = 0;
    while (have < sizeof(buf)) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    close(fd);
    size_t a = 0, b = have;
    while (a < b && is_space(buf[a]))
        a++;
    while (b > a && is_space(buf[b - 1]))
        b--;
    int rc = b > a ? set_key(key, buf + a, b - a) : 0;
    OPENSSL_cleanse(buf, sizeof(buf));
    if (rc < 0) {
        snprintf(err, errn, "out of memory");
        return rc;
    }
    return b > a ? 1 : 0;
}

/* mkdir -p of path's directory, new directories mode 0700. */
static int make_dirs(const char *path)
{
    char d[4096];
    size_t n = strlen(path);
    if (n >= sizeof(d))
        return -1;
    memcpy(d, path, n + 1);
    char *slash = strrchr(d, '/');
    if (!slash || slash == d)
        return 0;
    *slash = '\0';
    for (char *p = d + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(d, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(d, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Creates the key file with a fresh key: 1 made, 0 made by another process
 * meanwhile, FQ_EAUTH. */
static int create_key_file(const char *path, char *err, size_t errn)
{
    unsigned char raw[32];
    char hex[2 * sizeof(raw) + 2];

    if (make_dirs(path) < 0) {
        snprintf(err, errn,
                 "no key: %s is not set and the key file %s cannot be "
                 "created (%s)",
                 FQ__AUTH_ENV, path, strerror(errno));
        return FQ_EAUTH;
    }
    int fd;
    do
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0) {
        snprintf(err, errn,
                 "no key: %s is not set and the key file %s cannot be "
                 "created (%s)",
                 FQ__AUTH_ENV, path, strerror(errno));
        return FQ_EAUTH;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        close(fd);
        unlink(path);
        snprintf(err, errn, "no random bytes for a new key");
        return FQ_EAUTH;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * sizeof(raw)] = '\n';
    size_t left = 2 * sizeof(raw) + 1, off = 0;
    while (left > 0) {
        ssize_t w = write(fd, hex + off, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
        left -= (size_t)w;
    }
    close(fd);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    if (left) {
        unlink(path);
        snprintf(err, errn, "the key file %s cannot be written", path);
        return FQ_EAUTH;
    }
    return 1;
}

int fq__auth_key_get(const void *data, size_t len, fq__key *key, char *err,
                     size_t errn)
{
    char path[4096];

    key->data = NULL;
    key->len = 0;
    if (data) {
        if (len == 0) {
            snprintf(err, errn, "empty authkey");
            return FQ_EAUTH;
        }
        if (set_key(key, data, len) < 0) {
            snprintf(err, errn, "out of memory");
            return FQ_ENOMEM;
        }
        return 0;
    }
    const char *env = getenv(FQ__AUTH_ENV);
    if (env && *env)
        return set_key(key, env, strlen(env));
    if (fq__auth_key_path(path, sizeof(path)) < 0) {
        snprintf(err, errn,
                 "no key: %s is not set and there is no home directory for "
                 "the key file",
                 FQ__AUTH_ENV);
        return FQ_EAUTH;
    }
    for (int i = 0; i < 50; i++) {
        int rc = read_key_file(path, key, err, errn);
        if (rc == 1)
            return 0;
        if (rc < -1)
            return rc;
        if (rc == -1) {
            rc = create_key_file(path, err, errn);
            if (rc < 0)
                return rc;
            continue; /* read what was made (by us or another process) */
        }
        /* Made by another process, not yet written. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(err, errn, "key file %s stays empty", path);
    return FQ_EAUTH;
}
