"""``python -m asyncjobs.emulator``: the same command as ``asyncjobs emulator``."""

from .cli import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m asyncjobs.emulator")
