"""What several test folders share: spec builders (:mod:`.specs`), the command as a subprocess
(:mod:`.cli`), settings presets (:mod:`.presets`) and a real PostgreSQL server (:mod:`.postgres`).
The emulator as a subprocess is :mod:`asyncjobs.emulator.process`, shared with the benchmarks."""
