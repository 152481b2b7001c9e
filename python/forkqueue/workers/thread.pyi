from .worker import Worker

class ThreadWorker(Worker):
    def terminate(self, timeout: float = ..., force: bool = ...) -> bool: ...
