/* The frame codec: round trips, byte layout and every rejection path. */
#include "fq_test.h"

#include "wire/rbuf.h"
#include "wire/wire.h"

static void encode(const fq__frame *f, unsigned char out[FQ__WIRE_HDR])
{
    memset(out, 0xEE, FQ__WIRE_HDR);
    fq__frame_encode(f, out);
}

static int decode(const unsigned char *buf, unsigned accept, fq__frame *f)
{
    return fq__frame_decode(buf, FQ__WIRE_HDR, accept, f);
}

static void put64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_job_round_trip(void **state)
{
    (void)state;
    const uint64_t fns[] = {1, 0x00007f0012345678u, UINT64_MAX};
    const uint64_t ids[] = {0, 1, 0x0123456789abcdefu, UINT64_MAX};
    const uint64_t lens[] = {0, 1, 31, 32, 1u << 28, FQ__WIRE_MAX_PAYLOAD};
    for (size_t a = 0; a < sizeof fns / sizeof *fns; a++)
        for (size_t b = 0; b < sizeof ids / sizeof *ids; b++)
            for (size_t c = 0; c < sizeof lens / sizeof *lens; c++) {
                fq__frame in = {.type = FQ__FRAME_JOB,
                                .fn = fns[a],
                                .id = ids[b],
                                .len = lens[c]};
                unsigned char buf[FQ__WIRE_HDR];
                encode(&in, buf);
                fq__frame out;
                memset(&out, 0xAB, sizeof out);
                assert_int_equal(decode(buf, FQ__ACCEPT_JOB, &out),
                                 FQ__WIRE_HDR);
                assert_int_equal(out.type, FQ__FRAME_JOB);
                assert_int_equal(out.status, 0);
                assert_int_equal(out.code, 0);
                assert_true(out.fn == fns[a]);
                assert_true(out.id == ids[b]);
                assert_true(out.len == lens[c]);
                assert_true(out.wseq == 0 && out.run_us == 0);
            }
}

static void test_result_round_trip(void **state)
{
    (void)state;
    struct {
        int32_t status, code;
    } cases[] = {{0, 0},
                 {FQ_EJOB, 1},
                 {FQ_EJOB, -1},
                 {FQ_EJOB, INT32_MAX},
                 {FQ_EJOB, INT32_MIN},
                 {FQ_EJOB, 0}};
    const uint64_t seqs[] = {0, 123456789, UINT64_MAX};
    const uint32_t runs[] = {0, 4000000, UINT32_MAX};
    for (size_t a = 0; a < sizeof cases / sizeof *cases; a++)
        for (size_t b = 0; b < sizeof seqs / sizeof *seqs; b++) {
            fq__frame in = {.type = FQ__FRAME_RESULT,
                            .status = cases[a].status,
                            .code = cases[a].code,
                            .wseq = seqs[b],
                            .run_us = runs[b],
                            .len = 4096 + a};
            unsigned char buf[FQ__WIRE_HDR];
            encode(&in, buf);
            fq__frame out;
            memset(&out, 0xAB, sizeof out);
            assert_int_equal(decode(buf, FQ__ACCEPT_FROM_WORKER, &out),
                             FQ__WIRE_HDR);
            assert_int_equal(out.type, FQ__FRAME_RESULT);
            assert_int_equal(out.status, cases[a].status);
            assert_int_equal(out.code, cases[a].code);
            assert_true(out.wseq == seqs[b]);
            assert_true(out.run_us == runs[b]);
            assert_true(out.len == 4096 + a);
            assert_true(out.fn == 0);
            assert_true(out.id == 0);
        }
}

static void test_init_fail_round_trip(void **state)
{
    (void)state;
    fq__frame in = {.type = FQ__FRAME_INIT_FAIL, .len = 17};
    unsigned char buf[FQ__WIRE_HDR];
    encode(&in, buf);
    fq__frame out;
    memset(&out, 0xAB, sizeof out);
    assert_int_equal(decode(buf, FQ__ACCEPT_FROM_WORKER, &out), FQ__WIRE_HDR);
    assert_int_equal(out.type, FQ__FRAME_INIT_FAIL);
    assert_true(out.len == 17);
    assert_int_equal(out.status, 0);
    assert_int_equal(out.code, 0);
    assert_true(out.fn == 0 && out.id == 0 && out.wseq == 0 && out.run_us == 0);
}

/* The layout documented in wire.h, byte for byte (little-endian). */
static void test_layout(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    fq__frame job = {.type = FQ__FRAME_JOB,
                     .fn = 0x1122334455667788u,
                     .id = 0x0102030405060708u,
                     .len = 0xa1a2a3a4a5a6a7a8u};
    encode(&job, buf);
    const unsigned char want_job[FQ__WIRE_HDR] = {
        0x71, 0x66, 2,    1,    0,    0,    0,    0,    0x88, 0x77, 0x66,
        0x55, 0x44, 0x33, 0x22, 0x11, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
        0x02, 0x01, 0xa8, 0xa7, 0xa6, 0xa5, 0xa4, 0xa3, 0xa2, 0xa1};
    assert_memory_equal(buf, want_job, FQ__WIRE_HDR);

    fq__frame res = {.type = FQ__FRAME_RESULT,
                     .status = FQ_EJOB,
                     .code = -2,
                     .run_us = 0x0c0b0a09u,
                     .wseq = 0x0807060504030201u,
                     .len = 5};
    encode(&res, buf);
    const unsigned char want_res[FQ__WIRE_HDR] = {
        0x71, 0x66, 2,    2,    0xf6, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff,
        0xff, 0x09, 0x0a, 0x0b, 0x0c, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        0x07, 0x08, 5,    0,    0,    0,    0,    0,    0,    0};
    assert_memory_equal(buf, want_res, FQ__WIRE_HDR);

    /* Fields that do not belong to a frame type are written as zero even
     * when the struct holds garbage in them. */
    fq__frame fail = {.type = FQ__FRAME_INIT_FAIL,
                      .fn = 99,
                      .id = 98,
                      .wseq = 97,
                      .run_us = 95,
                      .code = 96,
                      .len = 3};
    encode(&fail, buf);
    for (int i = 8; i < 24; i++)
        assert_int_equal(buf[i], 0);
    fq__frame out;
    assert_int_equal(decode(buf, FQ__ACCEPT_FROM_WORKER, &out), FQ__WIRE_HDR);
}

static void test_short_input(void **state)
{
    (void)state;
    fq__frame in = {.type = FQ__FRAME_JOB, .fn = 5, .id = 6, .len = 7};
    unsigned char buf[FQ__WIRE_HDR];
    encode(&in, buf);
    fq__frame out;
    for (size_t n = 0; n < FQ__WIRE_HDR; n++) {
        /* Exactly n bytes on the heap, so ASan catches any read past them. */
        unsigned char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, buf, n);
        assert_int_equal(fq__frame_decode(p, n, FQ__ACCEPT_JOB, &out), 0);
        free(p);
    }
    /* More than a header is fine: the payload follows. */
    unsigned char big[FQ__WIRE_HDR + 10];
    memcpy(big, buf, FQ__WIRE_HDR);
    memset(big + FQ__WIRE_HDR, 0x55, 10);
    assert_int_equal(fq__frame_decode(big, sizeof big, FQ__ACCEPT_JOB, &out),
                     FQ__WIRE_HDR);
    assert_true(out.id == 6);
}

/* Exactly FQ__WIRE_HDR bytes on the heap at an odd address. */
static void test_unaligned(void **state)
{
    (void)state;
    fq__frame in = {.type = FQ__FRAME_RESULT, .wseq = 77, .len = 9};
    unsigned char *p = malloc(FQ__WIRE_HDR + 1);
    assert_non_null(p);
    fq__frame_encode(&in, p + 1);
    fq__frame out;
    assert_int_equal(
        fq__frame_decode(p + 1, FQ__WIRE_HDR, FQ__ACCEPT_FROM_WORKER, &out),
        FQ__WIRE_HDR);
    assert_true(out.wseq == 77 && out.len == 9);
    free(p);
}

static void valid_job(unsigned char *buf)
{
    fq__frame in = {.type = FQ__FRAME_JOB, .fn = 0x1000, .id = 3, .len = 8};
    fq__frame_encode(&in, buf);
}

static void valid_result(unsigned char *buf)
{
    fq__frame in = {.type = FQ__FRAME_RESULT, .len = 8};
    fq__frame_encode(&in, buf);
}

static void valid_init_fail(unsigned char *buf)
{
    fq__frame in = {.type = FQ__FRAME_INIT_FAIL, .len = 8};
    fq__frame_encode(&in, buf);
}

#define REJECT(buf, accept)                                                    \
    do {                                                                       \
        fq__frame out_;                                                        \
        assert_int_equal(decode((buf), (accept), &out_), FQ_EPROTO);           \
    } while (0)

static void test_bad_magic_version(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    void (*makers[])(unsigned char *) = {valid_job, valid_result,
                                         valid_init_fail};
    const unsigned accepts[] = {FQ__ACCEPT_JOB, FQ__ACCEPT_FROM_WORKER,
                                FQ__ACCEPT_FROM_WORKER};
    for (int m = 0; m < 3; m++) {
        for (int byte = 0; byte < 3; byte++) {
            for (int v = 0; v < 256; v++) {
                makers[m](buf);
                if (buf[byte] == v)
                    continue;
                buf[byte] = (unsigned char)v;
                REJECT(buf, accepts[m]);
            }
        }
    }
}

static void test_bad_type(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    fq__frame out;
    for (int t = 0; t < 256; t++) {
        valid_init_fail(buf); /* all-zero fields: only the type decides */
        buf[3] = (unsigned char)t;
        int ok_job = t == FQ__FRAME_JOB;
        int ok_worker = t == FQ__FRAME_RESULT || t == FQ__FRAME_INIT_FAIL ||
                        t == FQ__FRAME_HELLO || t == FQ__FRAME_STARTED ||
                        t == FQ__FRAME_LOG;
        int ok_msg = t == FQ__FRAME_MSG;
        int ok_cancel = t == FQ__FRAME_CANCEL;
        /* A JOB frame with fn 0 is invalid; give it a function. A HELLO
         * names a pid. */
        if (t == FQ__FRAME_JOB || t == FQ__FRAME_HELLO)
            put64le(buf + 8, 0x1000);
        put64le(buf + 24, 0); /* HELLO, STARTED, CANCEL have no payload */
        assert_int_equal(decode(buf, FQ__ACCEPT_TO_WORKER, &out),
                         ok_job || ok_cancel ? (int)FQ__WIRE_HDR : FQ_EPROTO);
        assert_int_equal(decode(buf, FQ__ACCEPT_JOB, &out),
                         ok_job ? (int)FQ__WIRE_HDR : FQ_EPROTO);
        assert_int_equal(decode(buf, FQ__ACCEPT_FROM_WORKER, &out),
                         ok_worker ? (int)FQ__WIRE_HDR : FQ_EPROTO);
        assert_int_equal(decode(buf, FQ__ACCEPT_MSG, &out),
                         ok_msg ? (int)FQ__WIRE_HDR : FQ_EPROTO);
        assert_int_equal(decode(buf, 0, &out), FQ_EPROTO);
        /* Accepting every bit still refuses unknown types. */
        assert_int_equal(decode(buf, ~0u, &out),
                         ok_job || ok_worker || ok_msg || ok_cancel
                             ? (int)FQ__WIRE_HDR
                             : FQ_EPROTO);
    }
}

static void test_bad_len(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    fq__frame out;
    const uint64_t bad[] = {FQ__WIRE_MAX_PAYLOAD + 1, UINT64_MAX,
                            UINT64_C(1) << 63, UINT64_C(1) << 41};
    void (*makers[])(unsigned char *) = {valid_job, valid_result,
                                         valid_init_fail};
    const unsigned accepts[] = {FQ__ACCEPT_JOB, FQ__ACCEPT_FROM_WORKER,
                                FQ__ACCEPT_FROM_WORKER};
    for (int m = 0; m < 3; m++) {
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            makers[m](buf);
            put64le(buf + 24, bad[i]);
            REJECT(buf, accepts[m]);
        }
        /* An init failure's message has a bound of its own. */
        uint64_t max = m == 2 ? FQ__INIT_MSG_MAX : FQ__WIRE_MAX_PAYLOAD;
        makers[m](buf);
        put64le(buf + 24, max);
        assert_int_equal(decode(buf, accepts[m], &out), FQ__WIRE_HDR);
        assert_true(out.len == max);
        put64le(buf + 24, max + 1);
        REJECT(buf, accepts[m]);
    }
}

static void test_job_rules(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    /* flags: BY_ID only */
    for (int bit = 1; bit < 32; bit++) {
        valid_job(buf);
        put32le(buf + 4, UINT32_C(1) << bit);
        REJECT(buf, FQ__ACCEPT_JOB);
    }
    fq__frame out;
    valid_job(buf);
    put32le(buf + 4, FQ__JOB_BY_ID);
    assert_int_equal(decode(buf, FQ__ACCEPT_JOB, &out), FQ__WIRE_HDR);
    assert_true(out.flags == FQ__JOB_BY_ID);
    valid_job(buf);
    put32le(buf + 4, (uint32_t)FQ_EJOB);
    REJECT(buf, FQ__ACCEPT_JOB);
    /* a job needs a function */
    valid_job(buf);
    put64le(buf + 8, 0);
    REJECT(buf, FQ__ACCEPT_JOB);
}

static void test_result_rules(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    fq__frame out;
    /* Bytes 12..15 are the run time: any value is valid. */
    for (int i = 12; i < 16; i++) {
        valid_result(buf);
        buf[i] = 0xff;
        assert_int_equal(decode(buf, FQ__ACCEPT_FROM_WORKER, &out),
                         FQ__WIRE_HDR);
    }
    /* Status: only 0, FQ_EJOB (and FQ_ENOFUNC, FQ_ECANCELED: below). */
    const int32_t bad_status[] = {1,         -1,           FQ_ECRASHED,
                                  FQ_EPROTO, FQ_ETIMEDOUT, INT32_MIN,
                                  INT32_MAX, FQ_EINIT};
    for (size_t i = 0; i < sizeof bad_status / sizeof *bad_status; i++) {
        valid_result(buf);
        put32le(buf + 4, (uint32_t)bad_status[i]);
        put32le(buf + 8, 1);
        REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    }
    /* A success carries no code. */
    valid_result(buf);
    put32le(buf + 8, 5);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    /* A job error may carry any code. */
    valid_result(buf);
    put32le(buf + 4, (uint32_t)FQ_EJOB);
    put32le(buf + 8, 5);
    assert_int_equal(decode(buf, FQ__ACCEPT_FROM_WORKER, &out), FQ__WIRE_HDR);
    assert_int_equal(out.status, FQ_EJOB);
    assert_int_equal(out.code, 5);
}

static void test_init_fail_rules(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    valid_init_fail(buf);
    put32le(buf + 4, (uint32_t)FQ_EJOB);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    for (int i = 8; i < 24; i++) {
        valid_init_fail(buf);
        buf[i] = 0x80;
        REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    }
}

/* A channel message: every field but the length is zero; only channel
 * ends accept it, and channel ends accept nothing else. */
static void test_msg_rules(void **state)
{
    (void)state;
    unsigned char buf[FQ__WIRE_HDR];
    fq__frame in = {.type = FQ__FRAME_MSG, .len = 12345}, out;
    fq__frame_encode(&in, buf);
    assert_int_equal(decode(buf, FQ__ACCEPT_MSG, &out), FQ__WIRE_HDR);
    assert_int_equal(out.type, FQ__FRAME_MSG);
    assert_true(out.len == 12345);
    REJECT(buf, FQ__ACCEPT_JOB);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    for (int i = 4; i < 24; i++) {
        fq__frame_encode(&in, buf);
        buf[i] = 0x01;
        REJECT(buf, FQ__ACCEPT_MSG);
    }
    fq__frame_encode(&in, buf);
    put64le(buf + 24, FQ__WIRE_MAX_PAYLOAD + 1);
    REJECT(buf, FQ__ACCEPT_MSG);
    valid_result(buf);
    REJECT(buf, FQ__ACCEPT_MSG);
    valid_job(buf);
    REJECT(buf, FQ__ACCEPT_MSG);
}

/*
 * Random headers: the decoder never reads beyond its input, and every header
 * it accepts is canonical (encoding the decoded frame gives the same bytes),
 * so two different byte strings never mean the same frame.
 */
static void test_random_canonical(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    int accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        unsigned char *buf = malloc(FQ__WIRE_HDR);
        assert_non_null(buf);
        fqt_fill(buf, FQ__WIRE_HDR, seed += 1000);
        uint64_t r = fqt_mix(seed);
        /* Mostly well-formed prefixes, so that the later checks run. */
        if (r & 1) {
            buf[0] = 0x71;
            buf[1] = 0x66;
            buf[2] = FQ__WIRE_VERSION;
            buf[3] = (unsigned char)(1 + (r >> 1) % FQ__FRAME_LAST);
        }
        if (r & 2)
            memset(buf + 4, 0, 4);
        if (r & 4)
            memset(buf + 12, 0, 4);
        if (r & 8)
            memset(buf + 8, 0, 16);
        if (r & 16)
            memset(buf + 29, 0, 3);
        if (r & 32)
            memset(buf + 8, 0, 4);
        if (r & 256) /* HELLO, STARTED, CANCEL carry no payload */
            memset(buf + 24, 0, 8);
        if (r & 512) /* and small fields */
            memset(buf + 5, 0, 3);
        unsigned accept = (r & 64)    ? FQ__ACCEPT_TO_WORKER
                          : (r & 128) ? FQ__ACCEPT_MSG
                                      : FQ__ACCEPT_FROM_WORKER;
        fq__frame out;
        int rc = fq__frame_decode(buf, FQ__WIRE_HDR, accept, &out);
        assert_true(rc == FQ_EPROTO || rc == (int)FQ__WIRE_HDR);
        if (rc == (int)FQ__WIRE_HDR) {
            accepted++;
            unsigned char again[FQ__WIRE_HDR];
            fq__frame_encode(&out, again);
            assert_memory_equal(again, buf, FQ__WIRE_HDR);
            assert_true(accept & (1u << out.type));
        }
        free(buf);
    }
    /* The generator must actually reach the accepting paths. */
    assert_true(accepted > 1000);
}

/* ---- protocol v2 frames ------------------------------------------------ */

static void round_trip(const fq__frame *in, unsigned accept, fq__frame *out)
{
    unsigned char buf[FQ__WIRE_HDR];
    encode(in, buf);
    memset(out, 0xAB, sizeof *out);
    assert_int_equal(decode(buf, accept, out), FQ__WIRE_HDR);
    unsigned char again[FQ__WIRE_HDR];
    encode(out, again);
    assert_memory_equal(buf, again, FQ__WIRE_HDR);
}

static void test_job_by_id(void **state)
{
    (void)state;
    fq__frame in = {.type = FQ__FRAME_JOB,
                    .flags = FQ__JOB_BY_ID,
                    .fn = 0x3c2d5e0b6a7d9f11u,
                    .id = 5,
                    .len = 3},
              out;
    round_trip(&in, FQ__ACCEPT_TO_WORKER, &out);
    assert_true(out.flags == FQ__JOB_BY_ID && out.fn == in.fn);
    unsigned char buf[FQ__WIRE_HDR];
    encode(&in, buf);
    assert_int_equal(buf[4], 1); /* the flags, at offset 4 */
    /* A RESULT may say the function is unknown, with no code. */
    fq__frame res = {
        .type = FQ__FRAME_RESULT, .status = FQ_ENOFUNC, .wseq = 4, .len = 10};
    round_trip(&res, FQ__ACCEPT_FROM_WORKER, &out);
    assert_int_equal(out.status, FQ_ENOFUNC);
    res.code = 3;
    encode(&res, buf);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    /* A RESULT may say the job was skipped (cancelled before it started),
     * with no code. */
    res.code = 0;
    res.status = FQ_ECANCELED;
    round_trip(&res, FQ__ACCEPT_FROM_WORKER, &out);
    assert_int_equal(out.status, FQ_ECANCELED);
    res.code = 2;
    encode(&res, buf);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    /* Other statuses stay refused. */
    res.code = 0;
    res.status = FQ_ECRASHED;
    encode(&res, buf);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
}

static void test_hello(void **state)
{
    (void)state;
    fq__frame in = {.type = FQ__FRAME_HELLO,
                    .flags = FQ__HELLO_PAGE,
                    .id = 4242},
              out;
    round_trip(&in, FQ__ACCEPT_FROM_WORKER, &out);
    assert_int_equal(out.version, FQ__WIRE_VERSION);
    assert_true(out.flags == FQ__HELLO_PAGE && out.id == 4242);
    in.flags = 0;
    round_trip(&in, FQ__ACCEPT_FROM_WORKER, &out);
    assert_true(out.flags == 0);
    unsigned char buf[FQ__WIRE_HDR];
    /* Only from a worker. */
    encode(&in, buf);
    REJECT(buf, FQ__ACCEPT_TO_WORKER);
    REJECT(buf, FQ__ACCEPT_MSG);
    /* Our version: unknown flags, no pid, a pid beyond pid_t, the unused
     * field, a payload: refused. */
    for (int bit = 1; bit < 32; bit++) {
        encode(&in, buf);
        put32le(buf + 4, UINT32_C(1) << bit);
        REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    }
    encode(&in, buf);
    put64le(buf + 8, 0);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    put64le(buf + 8, (uint64_t)INT32_MAX + 1);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    encode(&in, buf);
    put64le(buf + 16, 1);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    encode(&in, buf);
    put64le(buf + 24, 1);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    /* Another version: read as it is (so the parent can name it), but
     * version 0 and oversized payloads stay garbage, and other frame types
     * of another version are refused. */
    for (int v = 0; v < 256; v++) {
        encode(&in, buf);
        buf[2] = (unsigned char)v;
        put32le(buf + 4, 0xffffffffu);
        put64le(buf + 16, 77);
        put64le(buf + 24, 12);
        int rc = decode(buf, FQ__ACCEPT_FROM_WORKER, &out);
        if (v == 0 || v == FQ__WIRE_VERSION) {
            assert_int_equal(rc, FQ_EPROTO);
            continue;
        }
        assert_int_equal(rc, FQ__WIRE_HDR);
        assert_int_equal(out.version, v);
        assert_true(out.flags == 0xffffffffu && out.wseq == 77 &&
                    out.len == 12);
        unsigned char again[FQ__WIRE_HDR];
        encode(&out, again);
        assert_memory_equal(again, buf, FQ__WIRE_HDR);
        put64le(buf + 24, FQ__HELLO_MAX + 1);
        REJECT(buf, FQ__ACCEPT_FROM_WORKER);
        valid_result(buf);
        buf[2] = (unsigned char)v;
        REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    }
}

/* STARTED, CANCEL: a job id and its wseq, nothing else. */
static void test_started_cancel(void **state)
{
    (void)state;
    const unsigned types[] = {FQ__FRAME_STARTED, FQ__FRAME_CANCEL};
    const unsigned sides[] = {FQ__ACCEPT_FROM_WORKER, FQ__ACCEPT_TO_WORKER};
    for (int t = 0; t < 2; t++) {
        fq__frame in = {.type = types[t], .id = UINT64_MAX, .wseq = 17}, out;
        round_trip(&in, sides[t], &out);
        assert_true(out.id == UINT64_MAX && out.wseq == 17 && out.len == 0);
        unsigned char buf[FQ__WIRE_HDR];
        encode(&in, buf);
        REJECT(buf, sides[1 - t]);
        REJECT(buf, FQ__ACCEPT_MSG);
        REJECT(buf, FQ__ACCEPT_JOB); /* a worker's JOB-only set */
        for (int i = 4; i < 8; i++) {
            encode(&in, buf);
            buf[i] = 1;
            REJECT(buf, sides[t]);
        }
        encode(&in, buf);
        put64le(buf + 24, 1);
        REJECT(buf, sides[t]);
    }
}

static void test_log_frame(void **state)
{
    (void)state;
    fq__frame in = {.type = FQ__FRAME_LOG,
                    .level = FQ_LOG_LEVEL_MAX,
                    .id = 9,
                    .wseq = 8,
                    .len = FQ_LOG_MAX},
              out;
    round_trip(&in, FQ__ACCEPT_FROM_WORKER, &out);
    assert_int_equal(out.level, FQ_LOG_LEVEL_MAX);
    assert_true(out.id == 9 && out.wseq == 8 && out.len == FQ_LOG_MAX);
    unsigned char buf[FQ__WIRE_HDR];
    encode(&in, buf);
    REJECT(buf, FQ__ACCEPT_TO_WORKER);
    put64le(buf + 24, FQ_LOG_MAX + 1);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    encode(&in, buf);
    put32le(buf + 4, FQ_LOG_LEVEL_MAX + 1);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
    put32le(buf + 4, (uint32_t)-1);
    REJECT(buf, FQ__ACCEPT_FROM_WORKER);
}

struct seen {
    int n;
    fq__frame f[16];
};

static void on_seen(void *arg, const fq__frame *f)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    s->f[s->n++] = *f;
}

/* The frame walker reports each header of a stream fed in any pieces,
 * skipping payloads, and stops at garbage. */
static void test_walker(void **state)
{
    (void)state;
    unsigned char stream[512];
    size_t n = 0;
    fq__frame frames[] = {
        {.type = FQ__FRAME_JOB, .fn = 1, .id = 1, .len = 40},
        {.type = FQ__FRAME_CANCEL, .id = 1, .wseq = 0},
        {.type = FQ__FRAME_JOB, .fn = 2, .id = 2, .len = 0},
        {.type = FQ__FRAME_CANCEL, .id = 2, .wseq = 1},
    };
    for (int i = 0; i < 4; i++) {
        fq__frame_encode(&frames[i], stream + n);
        n += FQ__WIRE_HDR;
        memset(stream + n, 0x71, (size_t)frames[i].len); /* looks like magic */
        n += (size_t)frames[i].len;
    }
    for (size_t piece = 1; piece <= n; piece++) {
        fq__wscan sc;
        struct seen s = {0};
        fq__wscan_init(&sc);
        for (size_t off = 0; off < n; off += piece) {
            size_t k = n - off < piece ? n - off : piece;
            assert_int_equal(fq__wscan_feed(&sc, stream + off, k,
                                            FQ__ACCEPT_TO_WORKER, on_seen, &s),
                             0);
        }
        assert_int_equal(s.n, 4);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(s.f[i].type, frames[i].type);
            assert_true(s.f[i].id == frames[i].id);
        }
    }
    /* Garbage after the second frame: two reported, then it gives up. */
    fq__wscan sc;
    struct seen s = {0};
    fq__wscan_init(&sc);
    memset(stream + 104, 0, FQ__WIRE_HDR);
    assert_int_equal(
        fq__wscan_feed(&sc, stream, n, FQ__ACCEPT_TO_WORKER, on_seen, &s),
        FQ_EPROTO);
    assert_int_equal(s.n, 2);
    assert_int_equal(
        fq__wscan_feed(&sc, stream, n, FQ__ACCEPT_TO_WORKER, on_seen, &s),
        FQ_EPROTO);
    assert_int_equal(s.n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_result_round_trip),
        cmocka_unit_test(test_init_fail_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_short_input),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_bad_magic_version),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_bad_len),
        cmocka_unit_test(test_job_rules),
        cmocka_unit_test(test_result_rules),
        cmocka_unit_test(test_init_fail_rules),
        cmocka_unit_test(test_msg_rules),
        cmocka_unit_test(test_random_canonical),
        cmocka_unit_test(test_job_by_id),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_started_cancel),
        cmocka_unit_test(test_log_frame),
        cmocka_unit_test(test_walker),
    };
    return FQT_RUN(tests);
}
