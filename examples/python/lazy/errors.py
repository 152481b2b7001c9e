# Error reporting: a failed job raises ResultEvaluationError when its proxy
# is used. The message shows where the job was submitted, then where it
# failed in the worker, then the original error. A lazy operator that
# fails (here str + int) reports the line of the operator.
import os
from typing import Any

import forkqueue.lazy as fork


def parse(text: str) -> int:
    return int(text)


def show(error: Exception) -> None:
    # Paths relative to this file, so the output is the same everywhere.
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    print(str(error).replace(here, ""))


total = 0
for text in ["1", "22", "x3", "4"]:
    total += fork.fork(parse, text)

try:
    print(total)
except fork.ResultEvaluationError as e:
    show(e)

label: Any = fork.fork(str, 5)  # a str, once evaluated
longer = label + 1
try:
    print(longer)
except fork.ResultEvaluationError as e:
    show(e)

# Other proxies are not affected.
print(fork.fork(parse, "42") + 1)
