"""The engine: playbook loading and compiling, run state transitions, Prefect segments, sweeper."""
