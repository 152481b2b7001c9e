
__all__ = [
    "SocketLink",
    "ChannelLink",
    "WorkerError",
    "RemoteTraceback",
    "encode_final",
    "decode_final",
    "dumps",
    "loads",
]

class RemoteTraceback(Exception):
    tb: str
    def __init__(self, tb: str) -> None: ...

class WorkerError(Exception):
    type_name: str
    message: str
    def __init__(self, type_name: str, message: str = ...) -> None: ...
