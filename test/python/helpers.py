"""Helpers shared by the forkqueue Python tests (processes, deadlines)."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child_pids(parent=None):
    """Pids of the processes whose parent is `parent` (default: us),
    zombies included."""
    parent = os.getpid() if parent is None else parent
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces: fields follow its ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == parent:
            found.append(int(name))
    return found


def new_children(before):
    """Our child processes that are not in `before` (a set of pids taken
    earlier): what a test started, whatever other tests of the same process
    left running."""
    return sorted(set(child_pids()) - set(before))


def proc_state(pid):
    """State letter of a process ('R', 'S', 'Z', ...) or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def is_running(pid):
    """True if the process exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def in_poll(pid):
    """True if the main thread of `pid` is blocked in poll() (the wait of a
    ForkQueue call, with the GIL released), as /proc/PID/wchan tells."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return "poll" in f.read()
    except OSError:
        return False


def wait_until(cond, timeout=10.0, interval=0.01):
    """Polls cond() until it is true or the deadline passes; returns its
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run_script(code, timeout=30, **kwargs):
    """Runs a Python snippet with this interpreter and environment."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def wait_for_file(path, timeout=20.0):
    """Job helper: blocks until `path` exists (a gate opened by the test)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.005)
    return path


def authkey_fixture(key):
    """A module-scoped autouse fixture setting FORKQUEUE_AUTHKEY to `key`
    for the tests of the module that binds it to a name
    (``authkey = authkey_fixture(KEY)``), restored after them, so that it
    never leaks into other files run in the same process."""
    import pytest

    @pytest.fixture(scope="module", autouse=True)
    def authkey():
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FORKQUEUE_AUTHKEY", key)
            yield key
    return authkey


def make_cert(directory, name="127.0.0.1"):
    """A self-signed certificate for 127.0.0.1 (common name `name`) and its
    key, made by the openssl command in `directory`; returns their paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    return cert, key


def tls_contexts(directory):
    """(server, client) ssl contexts over make_cert(directory): the client
    trusts that certificate only."""
    import ssl
    cert, key = make_cert(directory)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    return server_ctx, ssl.create_default_context(cafile=cert)


# mypy, for the typing tests.


def have_mypy():
    """True if mypy can be imported, installing it into this interpreter
    (as setup.sh and CI do) if needed."""
    try:
        import mypy  # noqa: F401
        return True
    except ImportError:
        pass
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mypy"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


def mypy_env():
    """The environment in which mypy finds this forkqueue: the build tree's,
    or the installed package as is."""
    env = dict(os.environ)
    import forkqueue
    root = os.path.dirname(os.path.dirname(forkqueue.__file__))
    if "site-packages" not in root:  # an installed package is found as is
        env["MYPYPATH"] = root
        env["PYTHONPATH"] = root  # absolute: the checks run elsewhere
    return env
