"""The portable core tests, collected by pytest under CPython.

The same modules run under MicroPython through ``test_micropython.py``.
"""

from cases_engine import *  # noqa: F401,F403
from cases_state import *  # noqa: F401,F403
from cases_interleave import *  # noqa: F401,F403
from cases_net import *  # noqa: F401,F403
from cases_resync import *  # noqa: F401,F403
from cases_busio import *  # noqa: F401,F403
from cases_wifi import *  # noqa: F401,F403
from cases_parser import *  # noqa: F401,F403
from cases_transcript import *  # noqa: F401,F403
