# Stubs for forkqueue.futures.server_process.
from typing import Any

from forkqueue.futures import (MemoryBlock as MemoryBlock,
                               MemoryBlockProxy as MemoryBlockProxy,
                               ServerProcess as ServerProcess, _BaseProxy,
                               managed as managed, managed_array as managed_array,
                               managed_dict as managed_dict,
                               managed_iterator as managed_iterator,
                               managed_list as managed_list,
                               managed_memoryblock as managed_memoryblock,
                               managed_namespace as managed_namespace,
                               managed_value as managed_value)

__all__ = [
    "ServerProcess",
    "BaseProxy",
    "AutoProxy",
    "MemoryBlock",
    "MemoryBlockProxy",
    "managed",
    "managed_list",
    "managed_dict",
    "managed_value",
    "managed_array",
    "managed_namespace",
    "managed_iterator",
    "managed_memoryblock",
]

BaseProxy = _BaseProxy

def AutoProxy(token: Any, serializer: str, manager: Any = None, authkey: bytes | None = None,
              exposed: Any = None, incref: bool = True,
              manager_owned: bool = False) -> Any: ...
