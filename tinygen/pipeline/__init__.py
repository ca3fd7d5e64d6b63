"""The commands' work, stage after stage: `build` (inputs -> int8 -> fit -> outputs ->
firmware) and `run` (build, then run it in QEMU or on this machine and check every output)."""
