import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "lib"), os.path.join(HERE, "..", "tools"), os.path.join(HERE, ".."), HERE, os.path.join(HERE, "emulator")]


def pytest_addoption(parser):
    soak = int(os.environ.get("WIZFI_SOAK", "1000"))
    parser.addoption("--soak", type=int, default=soak, help="requests in the soak test (default: $WIZFI_SOAK or 1000)")
