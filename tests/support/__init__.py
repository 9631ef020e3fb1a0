"""What several test folders share: spec builders (:mod:`.specs`), the command as a subprocess
(:mod:`.cli`) and settings presets (:mod:`.presets`). The emulator as a subprocess is
:mod:`asyncjobs.emulator.process`, shared with the benchmarks."""
