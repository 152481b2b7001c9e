
__all__ = [
    "AuthenticationError",
    "get_authkey",
    "key_file_path",
    "MAGIC",
    "CHALLENGE_LEN",
    "MAC_LEN",
    "server_hello",
    "server_check",
    "client_answer",
    "client_check",
]

MAGIC: bytes
CHALLENGE_LEN: int
MAC_LEN: int
HELLO_LEN: int
ANSWER_LEN: int
VERDICT_LEN: int
ENV_VAR: str

class AuthenticationError(ConnectionError): ...

def key_file_path() -> str: ...
def get_authkey(authkey: str | bytes | None = ...) -> bytes: ...
def server_hello() -> tuple[bytes, bytes]: ...
def server_check(key: bytes, challenge: bytes, answer: bytes) -> bytes: ...
def client_answer(key: bytes, hello: bytes) -> tuple[bytes, bytes, bytes]: ...
def client_check(key: bytes, verdict: bytes, c: bytes, s: bytes) -> None: ...
