"""The reliability proof suite: trials that kill, race and starve `ccspec` on purpose and count
what it lost or ran twice. `run.py` runs them and writes docs/RELIABILITY.md;
tests/test_reliability.py runs them reduced in CI."""
