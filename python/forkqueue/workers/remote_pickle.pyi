import pickle
from typing import IO, Any

class SupportRemoteGetState: ...

class Pickler(pickle.Pickler):
    def __init__(self, file: IO[bytes], protocol: int | None = ..., *,
                 remote: bool = ..., **kwargs: Any) -> None: ...

def dump(obj: Any, file: IO[bytes], protocol: int | None = ...,
         remote: bool = ..., **kwargs: Any) -> None: ...
def dumps(obj: Any, protocol: int | None = ..., remote: bool = ...,
          **kwargs: Any) -> bytes: ...
def load(file: IO[bytes], extra_kwargs: dict[str, Any] | None = ...,
         **kwargs: Any) -> Any: ...
def loads(data: bytes, extra_kwargs: dict[str, Any] | None = ...,
          **kwargs: Any) -> Any: ...

remote_dump = dump
remote_dumps = dumps
remote_load = load
remote_loads = loads
