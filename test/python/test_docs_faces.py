"""Every public name of the five faces is documented: each name of a face's
``__all__``, and each public attribute of the classes the package defines
there, appears (as a whole word) in docs/python-<face>.md."""
import importlib
import inspect
import os
import re

import pytest

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "docs")

# face module -> the doc pages that describe it
FACES = {
    "forkqueue": ["python-forkqueue.md"],
    "forkqueue.workers": ["python-workers.md"],
    "forkqueue.channels": ["python-channels.md"],
    # Pool and Executor have their own page, linked from the futures one.
    "forkqueue.futures": ["python-futures.md", "python-executor.md"],
    "forkqueue.lazy": ["python-lazy.md"],
}


def public_names(mod):
    for name in mod.__all__:
        yield name
        obj = getattr(mod, name)
        if (inspect.isclass(obj)
                and obj.__module__.startswith("forkqueue")):
            for attr in vars(obj):
                if not attr.startswith("_"):
                    yield f"{name}.{attr}"


@pytest.mark.parametrize("face", sorted(FACES))
def test_every_public_name_is_documented(face):
    if not os.path.isdir(DOCS):
        pytest.skip("no docs/ beside the tests (an installed copy)")
    text = "".join(open(os.path.join(DOCS, page)).read()
                   for page in FACES[face])
    mod = importlib.import_module(face)
    missing = []
    for full in public_names(mod):
        word = full.rsplit(".", 1)[-1]
        if not re.search(r"(?<![\w])" + re.escape(word) + r"(?![\w])", text):
            missing.append(full)
    assert not missing, f"not in {FACES[face]}: {missing}"
