from .worker import Worker

class ProcessWorker(Worker):
    @property
    def returncode(self) -> int | None: ...
    @property
    def exit_reason(self) -> str | None: ...
