"""The docs' generated tables, rendered from the committed runs under docs/results/.

``python -m poollab.measure.claims render`` rewrites every marker block of BENCHMARKS.md,
docs/TALK.md and docs/faults.md from the JSON file its marker names; ``render --check``
fails with a diff when a doc is out of date; ``run NAME|all`` re-runs the measurements that
write those files. The layout is described in docs/results/README.md.
"""
