from .._remote_exc import RemoteError, RemoteTraceback as RemoteTraceback

WorkerError = RemoteError
