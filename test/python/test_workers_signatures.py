"""Signature and name parity of forkqueue.workers with pyworkers, against a
table recorded from pyworkers 1.0.3 (not imported at test time: it is not a
dependency). Programs whose ``pyworkers.X`` imports became
``forkqueue.workers`` (or ``forkqueue.workers.X``) must find every name and
call every function and method with the same parameters and defaults.

The table was made by listing, for each pyworkers module, its public
non-module names and the ``inspect.signature`` of every function and of
every method its classes define (``__init__`` included)."""
import importlib
import inspect

import pytest

import forkqueue.workers as fw

# Deliberate additions (keyword-only, all with defaults): the key and TLS
# settings of the authenticated transport, and the server's limits.
EXTRA_PARAMS = {
    "remote.RemoteWorker.__init__": {"authkey", "ssl_context"},
    "remote_context.RemoteContext.__init__": {"authkey", "ssl_context"},
    "remote_server.RemoteServer.__init__": {
        "authkey", "handshake_timeout", "max_pending", "ssl_context"},
    "remote_server.RemoteServerProcess.__init__": {"authkey",
                                                   "server_kwargs"},
    "remote_server.run_server": {"kwargs"},
    "remote_server.spawn_server": {"kwargs"},
}

# Not provided (see docs/python-workers.md, "coming from pyworkers"): the
# SSH launcher, and the class pyworkers' server runs contexts in (ours runs
# them in its own forked workers).
NOT_PROVIDED = {"tmp_ssh_server", "RemoteContextWorker"}

PYWORKERS_NAMES = {
 'persistent': ['PersistentWorker', 'Worker', 'WorkerClosedError',
                'classproperty'],
 'persistent_process': ['PersistentProcessWorker', 'PersistentWorker', 'Pipe',
                        'ProcessWorker', 'WorkerClosedError'],
 'persistent_remote': ['ConnectionClosedError', 'LocalPipe',
                       'PersistentRemoteWorker', 'PersistentWorker',
                       'RemoteWorker', 'WorkerClosedError', 'get_logger',
                       'is_windows', 'logger', 'recv_msg', 'send_msg'],
 'persistent_thread': ['LocalPipe', 'PersistentThreadWorker',
                       'PersistentWorker', 'ThreadWorker', 'WorkerClosedError',
                       'get_logger', 'logger'],
 'pool': ['PersistentWorker', 'Pipe', 'Pool', 'PoolError', 'Worker',
          'WorkerType', 'foreign_raise', 'get_logger', 'logger'],
 'process': ['Pipe', 'ProcessWorker', 'Worker', 'WorkerTerminatedError',
             'WorkerType', 'classproperty', 'foreign_raise', 'get_logger',
             'gettid', 'logger', 'setproctitle', 'setthreadtitle'],
 'remote': ['ConnectionClosedError', 'GracefulExitError', 'Pipe',
            'RemoteWorker', 'RemoteWorkerMeta', 'SupportClassPropertiesMeta',
            'Worker', 'WorkerTerminatedError', 'WorkerType', 'classproperty',
            'default_port', 'foreign_raise', 'get_hostname', 'get_logger',
            'gettid', 'is_windows', 'logger', 'recv_msg',
            'sanitize_target_host', 'send_msg', 'set_keepalive', 'set_linger',
            'setproctitle', 'setthreadtitle'],
 'remote_context': ['ConnectionClosedError', 'PersistentProcessWorker',
                    'RemoteContext', 'RemoteContextWorker',
                    'SupportRemoteGetState', 'dumps', 'get_logger', 'loads',
                    'logger', 'recv_msg', 'sanitize_target_host', 'send_msg',
                    'set_keepalive'],
 'remote_pickle': ['Pickler', 'RemotePickler', 'SupportRemoteGetState',
                   'SupportRemoteGetStateMeta', 'dump', 'dumps', 'load',
                   'loads', 'python_is_exactly', 'remote_dump', 'remote_dumps',
                   'remote_load', 'remote_loads'],
 'remote_server': ['ConnectionClosedError', 'ProcessWorker', 'RemoteServer',
                   'RemoteServerProcess', 'WorkerTerminatedError',
                   'default_port', 'foreign_raise', 'get_logger', 'is_windows',
                   'logger', 'recv_msg', 'run_server', 'send_msg',
                   'set_keepalive', 'set_linger', 'spawn_server',
                   'tmp_ssh_server'],
 'thread': ['ThreadWorker', 'Worker', 'WorkerTerminatedError', 'WorkerType',
            'classproperty', 'foreign_raise', 'get_logger', 'gettid', 'logger',
            'setthreadtitle'],
 'utils': ['ABUSIVE', 'BraceMessage', 'BraceStyleAdapter', 'DETAILS',
           'LazyModule', 'LocalPipe', 'Pipe', 'PipeEndpoint', 'Queue',
           'STATUS', 'SupportClassPropertiesMeta', 'active_sleep',
           'active_wait', 'add_module_properties', 'classproperty',
           'foreign_raise', 'get_hostname', 'get_logger', 'gettid',
           'is_windows', 'python_is_at_least', 'python_is_exactly',
           'setproctitle', 'setthreadtitle', 'staticproperty', 'typename'],
 'worker': ['SupportClassPropertiesMeta', 'Worker', 'WorkerTerminatedError',
            'WorkerType', 'autoclose_active_children', 'classproperty',
            'get_hostname', 'gettid']}

PYWORKERS_SIGNATURES = {
 'persistent.PersistentWorker.__init__': '(self, target, _results_pipe, '
                                         '**kwargs)',
 'persistent.PersistentWorker.call': '(self, *args, **kwargs)',
 'persistent.PersistentWorker.close': '(self)',
 'persistent.PersistentWorker.enqueue': '(self, *args, **kwargs)',
 'persistent.PersistentWorker.next_result': '(self, block=True, timeout=None)',
 'persistent.PersistentWorker.restart': '(self, *args, results_pipe=None, '
                                        'timeout=None, **kwargs)',
 'persistent.PersistentWorker.results_iter': '(self, maxitems=None)',
 'persistent.WorkerClosedError.__init__': '(self, worker)',
 'persistent_process.PersistentProcessWorker.__init__': '(self, target, '
                                                        'results_pipe=None, '
                                                        '**kwargs)',
 'persistent_process.PersistentProcessWorker.close': '(self)',
 'persistent_process.PersistentProcessWorker.do_work': '(self)',
 'persistent_process.PersistentProcessWorker.enqueue': '(self, *args, '
                                                       '**kwargs)',
 'persistent_process.PersistentProcessWorker.wait': '(self, timeout=None)',
 'persistent_remote.PersistentRemoteWorker.__init__': '(self, target, '
                                                      'results_pipe=None, '
                                                      '**kwargs)',
 'persistent_remote.PersistentRemoteWorker.close': '(self)',
 'persistent_remote.PersistentRemoteWorker.do_work': '(self)',
 'persistent_remote.PersistentRemoteWorker.enqueue': '(self, *args, **kwargs)',
 'persistent_remote.PersistentRemoteWorker.wait': '(self, *args, **kwargs)',
 'persistent_thread.PersistentThreadWorker.__init__': '(self, target, '
                                                      'results_pipe=None, '
                                                      '**kwargs)',
 'persistent_thread.PersistentThreadWorker.close': '(self)',
 'persistent_thread.PersistentThreadWorker.do_work': '(self)',
 'persistent_thread.PersistentThreadWorker.enqueue': '(self, *args, **kwargs)',
 'persistent_thread.PersistentThreadWorker.wait': '(self, timeout=None)',
 'pool.Pool.__init__': '(self, target, results_queue=None, args=None, '
                       'kwargs=None, retry=True, close_timeout=5, '
                       'force_terminate=None, name=None)',
 'pool.Pool.add_worker': '(self, worker_type, name=None, userid=None, '
                         'target=None, args=None, kwargs=None, '
                         '**worker_kwargs)',
 'pool.Pool.attach': '(self, worker)',
 'pool.Pool.close': '(self, timeout=None, force=None)',
 'pool.Pool.handle_new_worker': '(self, worker)',
 'pool.Pool.restart_workers': '(self, timeout=1, **kwargs)',
 'pool.Pool.run': '(self, *input_sources, worker_callback=None, '
                  'enqueue_fn=None, worker_extra_pending_inputs=0, '
                  'return_results=True)',
 'pool.Pool.terminate': '(self, timeout=None, force=None)',
 'pool.PoolError.__init__': '(self, msg, partial_results=None)',
 'process.ProcessWorker.__init__': '(self, *args, **kwargs)',
 'process.ProcessWorker.is_alive': '(self)',
 'process.ProcessWorker.terminate': '(self, timeout=1, force=True)',
 'process.ProcessWorker.wait': '(self, timeout=None)',
 'remote.RemoteWorker.__init__': '(self, *args, host=None, context=None, '
                                 'main_path=None, **kwargs)',
 'remote.RemoteWorker.is_alive': '(self)',
 'remote.RemoteWorker.terminate': '(self, timeout=5, force=True, '
                                  'remote_timeout=1, *, '
                                  '_release_remote_ctrl=False)',
 'remote.RemoteWorker.wait': '(self, timeout=None, remote_timeout=None)',
 'remote.recv_msg': '(sock, state_overwrites=None, comment=None)',
 'remote.sanitize_target_host': '(host)',
 'remote.send_msg': '(sock, msg, comment=None)',
 'remote.set_keepalive': '(sock, enable, time=None, interval=None, '
                         'probes=None)',
 'remote.set_linger': '(sock, enable, timeout)',
 'remote_context.RemoteContext.__init__': '(self, ctx_id, host=None, '
                                          'target=None, args=None, '
                                          'kwargs=None, extra_state=None)',
 'remote_context.RemoteContext.call': '(self, *args, **kwargs)',
 'remote_context.RemoteContext.close': '(self)',
 'remote_context.RemoteContext.is_alive': '(self)',
 'remote_context.RemoteContext.terminate': '(self, *args, '
                                           '_release_remote_ctrl=False, '
                                           '**kwargs)',
 'remote_context.RemoteContext.wait': '(self, *args, **kwargs)',
 'remote_context.RemoteContextWorker.__init__': '(self, context)',
 'remote_context.RemoteContextWorker.do_work': '(self)',
 'remote_pickle.dump': '(obj, file, protocol=None, remote=True, **kwargs)',
 'remote_pickle.dumps': '(obj, protocol=None, remote=True, **kwargs)',
 'remote_pickle.load': '(file, extra_kwargs=None, **kwargs)',
 'remote_pickle.loads': '(buff, extra_kwargs=None, **kwargs)',
 'remote_pickle.remote_dump': '(obj, file, protocol=None, remote=True, '
                              '**kwargs)',
 'remote_pickle.remote_dumps': '(obj, protocol=None, remote=True, **kwargs)',
 'remote_pickle.remote_load': '(file, extra_kwargs=None, **kwargs)',
 'remote_pickle.remote_loads': '(buff, extra_kwargs=None, **kwargs)',
 'remote_server.RemoteServer.__init__': '(self, addr, close_on_none=False)',
 'remote_server.RemoteServer.break_accept': '(self)',
 'remote_server.RemoteServer.install_handlers': '(self)',
 'remote_server.RemoteServer.open_socket': '(self)',
 'remote_server.RemoteServer.run': '(self)',
 'remote_server.RemoteServerProcess.__init__': '(self, addr, name=None, '
                                               'close_on_none=False)',
 'remote_server.RemoteServerProcess.run': '(self)',
 'remote_server.run_server': '(addr, install_handlers=True, '
                             'close_on_none=True)',
 'remote_server.spawn_server': '(addr, close_on_none=False)',
 'remote_server.tmp_ssh_server': '(host, user=None, passwd=None, wdir=None, '
                                 'server_port=None, command=None, '
                                 'suppress_children=True, '
                                 'preferred_python=None)',
 'thread.ThreadWorker.__init__': '(self, target, **kwargs)',
 'thread.ThreadWorker.is_alive': '(self)',
 'thread.ThreadWorker.terminate': '(self, timeout=1, force=False)',
 'thread.ThreadWorker.wait': '(self, timeout=None)',
 'utils.BraceMessage.__init__': '(self, fmt, args, kwargs)',
 'utils.BraceStyleAdapter.__init__': '(self, logger)',
 'utils.BraceStyleAdapter.abusive': '(self, msg, *args, **kwargs)',
 'utils.BraceStyleAdapter.details': '(self, msg, *args, **kwargs)',
 'utils.BraceStyleAdapter.log': '(self, level, msg, *args, **kwargs)',
 'utils.BraceStyleAdapter.process': '(self, msg, kwargs)',
 'utils.BraceStyleAdapter.status': '(self, msg, *args, **kwargs)',
 'utils.LazyModule.__init__': '(self, module)',
 'utils.LocalPipe.__init__': '(self)',
 'utils.Pipe.__init__': '(self)',
 'utils.PipeEndpoint.__init__': '(self, pipe)',
 'utils.PipeEndpoint.close': '(self)',
 'utils.PipeEndpoint.fileno': '(self)',
 'utils.PipeEndpoint.get': '(self, block=True, timeout=None)',
 'utils.PipeEndpoint.get_nowait': '(self)',
 'utils.PipeEndpoint.poll': '(self, timeout=0)',
 'utils.PipeEndpoint.put': '(self, obj)',
 'utils.PipeEndpoint.recv': '(self)',
 'utils.PipeEndpoint.send': '(self, obj)',
 'utils.Queue.close': '(self)',
 'utils.active_sleep': '(timeout, interval=0.01)',
 'utils.active_wait': '(obj, timeout, interval=0.01)',
 'utils.add_module_properties': '(module_name, properties)',
 'utils.classproperty.__init__': '(self, fget=None, fset=None, fdel=None, '
                                 'doc=None)',
 'utils.foreign_raise': '(tid, exception)',
 'utils.get_hostname': '()',
 'utils.get_logger': '(name=None)',
 'utils.gettid': '(thread=None)',
 'utils.is_windows': '()',
 'utils.python_is_at_least': '(major, minor)',
 'utils.python_is_exactly': '(major, minor)',
 'utils.setproctitle': '(title, worker=None)',
 'utils.setthreadtitle': '(title, worker=None)',
 'utils.staticproperty.__init__': '(self, fget=None, fset=None, fdel=None, '
                                  'doc=None)',
 'utils.typename': '(obj)',
 'worker.Worker.__init__': '(self, target, *, host=None, args=None, '
                           'kwargs=None, name=None, userid=None, run=None, '
                           'set_names=True, init_state=None, '
                           '_is_restart=False)',
 'worker.Worker.active_children': '()',
 'worker.Worker.close': '(self)',
 'worker.Worker.create': '(cls, worker_type, *args, **kwargs)',
 'worker.Worker.do_work': '(self)',
 'worker.Worker.get_current_id': '()',
 'worker.Worker.is_alive': '(self)',
 'worker.Worker.register_child': '(child)',
 'worker.Worker.run': '(self, *args, **kwargs)',
 'worker.Worker.terminate': '(self, timeout=1, force=True)',
 'worker.Worker.wait': '(self, timeout=None)',
 'worker.WorkerTerminatedError.__init__': '(self, msg=None)',
 'worker.autoclose_active_children': '(timeout=0.1)'}


def _ours(path):
    mod, _, rest = path.partition(".")
    obj = importlib.import_module("forkqueue.workers." + mod)
    parts = rest.split(".")
    for i, part in enumerate(parts):
        if i == len(parts) - 1 and inspect.isclass(obj):
            obj = inspect.getattr_static(obj, part)
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
        else:
            obj = getattr(obj, part)
    return obj


def _without(sig, names):
    params = [p for p in sig.parameters.values() if p.name not in names]
    return sig.replace(parameters=params)


@pytest.mark.parametrize("path", sorted(
    p for p in PYWORKERS_SIGNATURES
    if not set(p.split(".")) & NOT_PROVIDED))
def test_signature_matches_pyworkers(path):
    sig = inspect.signature(_ours(path))
    sig = _without(sig, EXTRA_PARAMS.get(path, ()))
    assert str(sig) == PYWORKERS_SIGNATURES[path], path


@pytest.mark.parametrize("path", sorted(EXTRA_PARAMS))
def test_additions_are_keyword_only_with_defaults(path):
    sig = inspect.signature(_ours(path))
    for name in EXTRA_PARAMS[path]:
        p = sig.parameters[name]
        assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD), (path, name)
        assert p.kind is p.VAR_KEYWORD or p.default is not p.empty


@pytest.mark.parametrize("module", sorted(PYWORKERS_NAMES))
def test_every_public_name_of_the_module(module):
    mod = importlib.import_module("forkqueue.workers." + module)
    missing = [n for n in PYWORKERS_NAMES[module]
               if n not in NOT_PROVIDED and not hasattr(mod, n)]
    assert not missing, (module, missing)


def test_every_public_name_at_the_top_level():
    # `from pyworkers.utils import get_logger` rewritten to
    # `from forkqueue.workers import get_logger`; each module's `logger` is
    # its own, so it stays in its module
    names = {n for ns in PYWORKERS_NAMES.values() for n in ns}
    missing = sorted(n for n in names - NOT_PROVIDED - {"logger"}
                     if not hasattr(fw, n))
    assert not missing


def test_top_level_names_are_the_modules_objects():
    for module, names in PYWORKERS_NAMES.items():
        mod = importlib.import_module("forkqueue.workers." + module)
        for n in names:
            if n in NOT_PROVIDED or n == "logger":
                continue
            assert getattr(fw, n) is getattr(mod, n), (module, n)


def test_thread_workers_default_to_no_force_others_to_force():
    from forkqueue.workers import (PersistentRemoteWorker, ProcessWorker,
                                   RemoteWorker, ThreadWorker)
    force = {c: inspect.signature(c.terminate).parameters["force"].default
             for c in (ThreadWorker, ProcessWorker, RemoteWorker,
                       PersistentRemoteWorker)}
    assert force == {ThreadWorker: False, ProcessWorker: True,
                     RemoteWorker: True, PersistentRemoteWorker: True}
    timeout = inspect.signature(RemoteWorker.terminate).parameters["timeout"]
    assert timeout.default == 5
