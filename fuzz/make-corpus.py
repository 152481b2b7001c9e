#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

The seeds are a few valid frames of each type (so the fuzzer starts past the
magic bytes) and a few near misses. Run it again after a wire format change;
the files are checked in so that CI needs no Python step.
"""
import os
import struct
import sys

HDR = 32
EJOB = -10
ENOFUNC = -18
VERSION = 2


def frame(ftype, status=0, f8=0, f16=0, payload=b"", length=None, magic=b"qf",
          version=VERSION):
    if length is None:
        length = len(payload)
    return (magic + bytes([version, ftype]) + struct.pack("<iQQQ", status, f8,
                                                          f16, length)
            + payload)


def job(fn, jid, payload=b"", flags=0):
    # flags (bytes 4..7): 1 = fn is a registered function id
    return frame(1, flags, fn, jid, payload)


def hello(pid=4242, flags=1, version=VERSION):
    # flags 1: the worker shares a status page with the parent
    return frame(5, flags, pid, 0, version=version)


def started(jid, wseq):
    return frame(6, 0, jid, wseq)


def log(text, level=20, jid=0, wseq=0, length=None):
    return frame(7, level, jid, wseq, text, length)


def cancel(jid, wseq):
    return frame(8, 0, jid, wseq)


def result(payload=b"", status=0, code=0, run_us=1234, wseq=0, length=None):
    # bytes 8..11 code, 12..15 run time (us), 16..23 the job's sequence
    # number at its worker
    f8 = (code & 0xFFFFFFFF) | ((run_us & 0xFFFFFFFF) << 32)
    return frame(2, status, f8, wseq, payload, length)


def init_fail(text=b"init failed"):
    return frame(3, 0, 0, 0, text)


def msg(payload=b"", length=None):
    return frame(4, 0, 0, 0, payload, length)


def write(target, name, data):
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                     target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    headers = {
        "job": job(0x401000, 7)[:HDR],
        "result_ok": result(b"x" * 5)[:HDR],
        "result_ejob": result(b"bad input", EJOB, 3)[:HDR],
        "init_fail": init_fail()[:HDR],
        "bad_magic": frame(2, magic=b"fq")[:HDR],
        "bad_version": frame(2, version=VERSION + 1)[:HDR],
        "bad_type": frame(9)[:HDR],
        "huge_len": result(length=(1 << 40) + 1)[:HDR],
        "max_len": result(length=1 << 40)[:HDR],
        "short": result()[:HDR - 1],
        "msg": msg(b"hello")[:HDR],
        "msg_field_set": frame(4, 0, 1, 0, b"x")[:HDR],
        "job_by_id": job(0x3C2D5E0B6A7D9F11, 8, flags=1)[:HDR],
        "job_bad_flags": job(0x401000, 8, flags=2)[:HDR],
        "result_enofunc": result(b"function id", ENOFUNC)[:HDR],
        "hello": hello()[:HDR],
        "hello_no_page": hello(flags=0)[:HDR],
        "hello_v9": hello(version=9)[:HDR],
        "hello_v0": hello(version=0)[:HDR],
        "started": started(7, 3)[:HDR],
        "log": log(b"a record", 7, 7, 3)[:HDR],
        "log_too_long": log(b"", length=4097)[:HDR],
        "log_bad_level": log(b"x", level=256)[:HDR],
        "cancel": cancel(7, 3)[:HDR],
        "init_fail_too_long": frame(3, 0, 0, 0, b"", length=4097)[:HDR],
    }
    for name, h in headers.items():
        write("frame_decode", name, h)

    # rbuf_stream: byte 0 selects the side (bit 0: frames from a worker).
    to_worker = job(0x401000, 1, b"arg") + job(0x401000, 2) + job(0x1, 3,
                                                                  b"z" * 40)
    from_worker = (hello() + result(b"42") + result(b"no", EJOB, 5) + result()
                   + init_fail(b"boom"))
    streams = {
        "jobs": b"\x00" + to_worker,
        "results": b"\x01" + from_worker,
        "results_split": b"\x07" + from_worker,
        "results_then_garbage": b"\x01" + result(b"ok") + b"\x00" * 40,
        "truncated_payload": b"\x03" + result(b"abcdef")[:-2],
        "wrong_side": b"\x00" + result(b"x"),
        "big_payload": b"\x05" + result(bytes(range(256)) * 8),
        # bit 7 of byte 0: a public channel's end (MSG frames only)
        "msgs": b"\x80" + msg(b"one") + msg() + msg(b"three" * 30),
        "msgs_then_result": b"\x82" + msg(b"ok") + result(b"no"),
        "msg_truncated": b"\x84" + msg(b"abcdefgh")[:-3],
        "jobs_cancels": b"\x00" + job(0x401000, 1, b"arg") + cancel(1, 0)
        + job(0x77, 2, b"by id", flags=1) + cancel(2, 1) + cancel(9, 9),
        "wire_worker": b"\x01" + hello(flags=0) + started(1, 0)
        + log(b"hello", 20, 1, 0) + result(b"r1") + started(2, 1)
        + log(b"x" * 100, 255, 2, 1) + result(b"fn", ENOFUNC, wseq=1),
        "hello_other_version": b"\x03" + hello(version=7) + result(b"x"),
        # bits 7 and 6: a channel's parent end (MSG and the child's LOG)
        "channel_logs": b"\xc0" + log(b"one", 7) + msg(b"m") + log(b"two", 8)
        + msg(),
        "channel_child_log": b"\x80" + msg(b"m") + log(b"not here"),
    }
    for name, s in streams.items():
        write("rbuf_stream", name, s)

    # worker_garbage: raw bytes a worker writes into its channel. The target
    # runs each garbage job as the second job of its worker (wseq 1).
    garbage = {
        "valid_result": result(b"hello", wseq=1),
        "valid_ejob": result(b"failed", EJOB, 2, wseq=1),
        "wrong_wseq": result(b"hello", wseq=7),
        "two_results": result(b"a", wseq=1) + result(b"b", wseq=2),
        "half_header": result(b"abc", wseq=1)[:20],
        "half_payload": result(b"abcdefgh", wseq=1)[:-3],
        "init_fail": init_fail(b"forged"),
        "job_frame": job(0x401000, 1),
        "text": b"Traceback (most recent call last):\n",
        "huge_len": result(length=1 << 39),
        "empty": b"",
        "log": log(b"forged record", 3, 1, 1) + result(b"after", wseq=1),
        "log_wrong_wseq": log(b"from the future", 3, 1, 99),
        "log_too_long": log(b"", length=1 << 20),
        "second_hello": hello(),
        "started": started(1, 1),
        "cancel_frame": cancel(1, 1),
        "enofunc": result(b"no such function", ENOFUNC, wseq=1),
    }
    for name, g in garbage.items():
        write("worker_garbage", name, g)
    return 0


if __name__ == "__main__":
    sys.exit(main())
