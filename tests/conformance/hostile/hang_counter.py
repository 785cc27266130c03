"""evidence hangs (time.sleep(10**6)) after appending its pid to the file $BOGC_TEST_COUNTER.

Counts how often the harness calls a hanging function: with --properties, Hypothesis used
to repeat it about 115 times per law while shrinking.
"""

import os
import time
from typing import Any


def evidence(var: Any, **kwargs: Any) -> Any:
    with open(os.environ["BOGC_TEST_COUNTER"], "a") as counter:
        counter.write(f"{os.getpid()}\n")
    time.sleep(10**6)
