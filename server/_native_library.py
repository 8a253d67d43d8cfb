"""Where the native library is: beside this module, as `_nativelib.so`.

setup.py builds it (the forced-stop landing check, the one-thread frame
lookup and the attach agent).
Its name carries no interpreter tag because it links no Python symbol (it
looks them up in whichever interpreter loads it): one file serves every
CPython, and the wheel is py3-none. A module of its own so that the attach
client can find the file without loading it (no ctypes on that path).
"""

from pathlib import Path

PATH = Path(__file__).with_name("_nativelib.so")
