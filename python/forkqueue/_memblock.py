"""Shared memory blocks that cannot leak.

A :class:`MemoryBlock` is an anonymous memory file (``memfd_create``)
mapped shared. It has no name in the file system (nothing in ``/dev/shm``),
so nothing is left behind by any crash: the kernel frees the memory when
the last descriptor and the last mapping of it are gone, in whatever
process. Forked children share the parent's mapping as it is; any other
process of the same user that receives a block (pickled: through a queue, a
pipe, a manager) maps the same memory through ``/proc/<pid>/fd/<fd>`` of
the process that holds the block, with no copy.

The creating process holds the descriptor: when its block object is
garbage collected (or the process exits, or dies), the memory is released
as soon as no other process has it mapped. Where ``memfd_create`` does not
exist, the standard library's ``SharedMemory`` is used instead (named, so
with its usual cleanup only).
"""

import mmap
import os
import secrets
import weakref

__all__ = ["MemoryBlock"]

_HAVE_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def _release(mm, fd):
    try:
        mm.close()
    except BufferError:
        pass  # a memoryview of .buf is still out there; the GC frees it later
    except Exception:
        pass
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


class MemoryBlock:
    """A block of ``size`` bytes of memory shared with every process that
    gets this object (inherited by fork, or pickled), with no copy.

    ``name`` identifies the block (``fq_<pid>_<fd>_<token>``), ``size`` is
    its length, ``buf`` a writable ``memoryview`` of it.
    """

    def __init__(self, size: int):
        size = int(size)
        if size <= 0:
            raise ValueError(f"MemoryBlock size must be positive, got {size}")
        self._size = size
        if not _HAVE_MEMFD:  # pragma: no cover - not Linux
            from multiprocessing.shared_memory import SharedMemory
            self._shm = SharedMemory(create=True, size=size)
            self._name = self._shm.name
            self._mm = None
            self._fin = weakref.finalize(self, _unlink_shm, self._shm)
            return
        token = secrets.token_hex(6)
        fd = os.memfd_create(f"fq_{token}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            self._mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._name = f"fq_{os.getpid()}_{fd}_{token}"
        self._fin = weakref.finalize(self, _release, self._mm, fd)

    @classmethod
    def _attach(cls, name: str, size: int) -> "MemoryBlock":
        """The block called ``name``, mapped here (it stays mapped as long
        as this object lives, whatever happens to the holder)."""
        self = cls.__new__(cls)
        self._size = size
        self._name = name
        if not name.startswith("fq_"):  # pragma: no cover - not Linux
            from multiprocessing.shared_memory import SharedMemory
            self._shm = SharedMemory(name=name)
            self._mm = None
            self._fin = weakref.finalize(self, self._shm.close)
            return self
        try:
            _, pid, fd, token = name.split("_")
            path = f"/proc/{int(pid)}/fd/{int(fd)}"
        except ValueError:
            raise ValueError(f"not a MemoryBlock name: {name!r}") from None
        try:
            if os.readlink(path) != f"/memfd:fq_{token} (deleted)":
                raise FileNotFoundError
            fd_here = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            raise FileNotFoundError(
                f"MemoryBlock {name!r} is gone: process {pid} no longer holds "
                f"it (a block lives as long as the object that created it)") from None
        try:
            self._mm = mmap.mmap(fd_here, size)
        finally:
            os.close(fd_here)
        self._fin = weakref.finalize(self, _release, self._mm, -1)
        return self

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    @property
    def buf(self) -> memoryview:
        if self._mm is None:  # pragma: no cover - not Linux
            return self._shm.buf
        return memoryview(self._mm)

    def _name_size(self):
        return self._name, self._size

    def __reduce__(self):
        return (_attach, (self._name, self._size))

    def __repr__(self):
        return f"<{type(self).__name__} {self._name!r}, size {self._size}>"


def _attach(name, size):
    return MemoryBlock._attach(name, size)


def _unlink_shm(shm):  # pragma: no cover - not Linux
    try:
        shm.close()
        shm.unlink()
    except Exception:
        pass
