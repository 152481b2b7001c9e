"""Authentication of remote-worker connections (shared by the client, the
server and the command-line server).

Both sides prove they know a shared key before either unpickles anything
the other sent. The exchange has fixed sizes, so it needs no parser:

    server -> client   b"FQW1" + S                          (36 bytes)
    client -> server   C + HMAC(key, b"fq-client" + S + C)  (64 bytes)
    server -> client   b"OK" + HMAC(key, b"fq-server" + C + S)  (34 bytes)
                       or b"NO" and the connection is closed

S and C are 32 fresh random bytes from `secrets`; HMAC is HMAC-SHA256 from
`hmac` (OpenSSL underneath); MACs are compared with `hmac.compare_digest`.
A recorded exchange cannot be replayed: the other side's challenge differs
every time. The key never travels.

Where the key comes from: the ``authkey`` argument, else the environment
variable ``FORKQUEUE_AUTHKEY``, else the per-user key file
``$XDG_CONFIG_HOME/forkqueue/authkey`` (``~/.config/forkqueue/authkey``),
created with mode 0600 on first use. A key file that its group or others
can read, or that another user owns, is refused.
"""
import errno
import hashlib
import hmac
import os
import secrets
import stat
import time

__all__ = ["AuthenticationError", "get_authkey", "key_file_path",
           "MAGIC", "CHALLENGE_LEN", "MAC_LEN", "server_hello",
           "server_check", "client_answer", "client_check"]

MAGIC = b"FQW1"
CHALLENGE_LEN = 32
MAC_LEN = 32
HELLO_LEN = len(MAGIC) + CHALLENGE_LEN        # server's first message
ANSWER_LEN = CHALLENGE_LEN + MAC_LEN          # client's answer
VERDICT_LEN = 2 + MAC_LEN                     # server's verdict ("OK"+MAC)
ENV_VAR = "FORKQUEUE_AUTHKEY"


class AuthenticationError(ConnectionError):
    """The peer of a remote-worker connection failed authentication (or
    no key could be found)."""


def key_file_path():
    """Path of the per-user key file."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
        os.path.expanduser("~"), ".config")
    return os.path.join(base, "forkqueue", "authkey")


def _read_key_file(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuthenticationError(f"key file {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise AuthenticationError(
                f"key file {path} belongs to another user (uid {st.st_uid})")
        if st.st_mode & 0o077:
            raise AuthenticationError(
                f"key file {path} can be read by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); refusing it: "
                f"run chmod 600 {path}")
        data = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    return data


def _load_or_create(path):
    for _ in range(50):
        try:
            data = _read_key_file(path)
        except FileNotFoundError:
            data = None
        if data:
            return data
        if data is None:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                             os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                pass  # another process made it: read theirs
            else:
                try:
                    os.write(fd, secrets.token_hex(32).encode() + b"\n")
                finally:
                    os.close(fd)
                continue
        time.sleep(0.01)  # made by another process, not yet written
    raise AuthenticationError(f"key file {path} stays empty")


def get_authkey(authkey=None):
    """The key as bytes: ``authkey``, else $FORKQUEUE_AUTHKEY, else the
    key file (created if missing). Raises AuthenticationError (with the
    reason) if there is none and none can be made."""
    if authkey is not None:
        key = authkey.encode() if isinstance(authkey, str) else bytes(authkey)
        if not key:
            raise AuthenticationError("empty authkey")
        return key
    env = os.environ.get(ENV_VAR)
    if env:
        return env.encode()
    path = key_file_path()
    try:
        return _load_or_create(path)
    except AuthenticationError:
        raise
    except OSError as e:
        raise AuthenticationError(
            f"no key: {ENV_VAR} is not set and the key file {path} cannot be "
            f"read or created ({errno.errorcode.get(e.errno, e.errno)}: "
            f"{e.strerror})") from e


def _mac(key, label, a, b):
    return hmac.new(key, label + a + b, hashlib.sha256).digest()


def server_hello():
    """The server's first message and its challenge."""
    challenge = secrets.token_bytes(CHALLENGE_LEN)
    return MAGIC + challenge, challenge


def server_check(key, challenge, answer):
    """Checks the client's answer; returns the verdict to send (it starts
    with b"OK" when the client is authenticated)."""
    if len(answer) != ANSWER_LEN:
        return b"NO"
    c, mac = answer[:CHALLENGE_LEN], answer[CHALLENGE_LEN:]
    if not hmac.compare_digest(mac, _mac(key, b"fq-client", challenge, c)):
        return b"NO"
    return b"OK" + _mac(key, b"fq-server", c, challenge)


def client_answer(key, hello):
    """The client's answer to the server's hello, and its own challenge."""
    if len(hello) != HELLO_LEN or hello[:len(MAGIC)] != MAGIC:
        raise AuthenticationError(
            "authentication failed: the peer is not a forkqueue worker server")
    s = hello[len(MAGIC):]
    c = secrets.token_bytes(CHALLENGE_LEN)
    return c + _mac(key, b"fq-client", s, c), c, s


def client_check(key, verdict, c, s):
    """Raises AuthenticationError unless the server's verdict proves it
    knows the key."""
    if verdict[:2] != b"OK" or len(verdict) != VERDICT_LEN:
        raise AuthenticationError(
            "authentication failed: the server rejected our key (is the same "
            f"key set on both sides? authkey=, ${ENV_VAR} or the key file)")
    if not hmac.compare_digest(verdict[2:], _mac(key, b"fq-server", c, s)):
        raise AuthenticationError(
            "authentication failed: the server does not know the key")
