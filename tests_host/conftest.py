import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "lib"), os.path.join(HERE, "..", "tools"), os.path.join(HERE, ".."), HERE, os.path.join(HERE, "emulator")]
