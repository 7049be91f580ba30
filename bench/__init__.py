"""RegBridge benchmarks (``make bench``): each figure a ratio against a baseline measured in the same run.

Absolute times drift on a shared machine; a ratio to something measured a moment before on the
same machine does not. Results and machine details go to docs/benchmarks.md.
"""
