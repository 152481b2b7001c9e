import pickle
from typing import IO, Any

from .utils import python_is_exactly as python_is_exactly

__all__ = [
    "SupportRemoteGetState",
    "SupportRemoteGetStateMeta",
    "Pickler",
    "RemotePickler",
    "dump",
    "dumps",
    "load",
    "loads",
]

class SupportRemoteGetStateMeta(type):
    supported_classes: list[type]
    def __init__(cls, name: str, bases: tuple[type, ...],
                 namespace: dict[str, Any]) -> None: ...

class SupportRemoteGetState(metaclass=SupportRemoteGetStateMeta): ...

class Pickler(pickle.Pickler):
    def __init__(self, *args: Any, remote: bool = ...,
                 **kwargs: Any) -> None: ...
    def reducer_override(self, obj: Any) -> Any: ...
    @staticmethod
    def subject_to_custom_reduce(obj: Any) -> bool: ...
    def remote_reduce(self, obj: Any) -> tuple[Any, ...]: ...

RemotePickler = Pickler

def dump(obj: Any, file: IO[bytes], protocol: int | None = ...,
         remote: bool = ..., **kwargs: Any) -> None: ...
def dumps(obj: Any, protocol: int | None = ..., remote: bool = ...,
          **kwargs: Any) -> bytes: ...
def load(file: IO[bytes], extra_kwargs: dict[str, Any] | None = ...,
         **kwargs: Any) -> Any: ...
def loads(buff: bytes, extra_kwargs: dict[str, Any] | None = ...,
          **kwargs: Any) -> Any: ...

remote_dump = dump
remote_dumps = dumps
remote_load = load
remote_loads = loads
