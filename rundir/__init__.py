"""The run directory: the one contract between the harness (benchmarks/) and the reports.

Torch-free and importing nothing else of the project, so that every layer may use it:
`rundir.atomic` writes files atomically and hashes them; the run directory itself
(layout, every file's reader and writer, a run's identity keys) is `rundir.run`.
"""
