"""Fixtures shared by the forkqueue.futures tests."""
import pytest


@pytest.fixture(autouse=True, scope="module")
def spawn_resource_tracker():
    """Spawning (and spawn-context queues and locks) starts the standard
    library's resource tracker, a child of this process that would otherwise
    live as long as the interpreter: start it before the tests of a module
    count their children, and stop and reap it after the module, so that
    modules run later in the same session see no child of ours."""
    import gc
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    yield
    gc.collect()  # semaphores of this module's tests unlink themselves first
    resource_tracker._resource_tracker._stop()
