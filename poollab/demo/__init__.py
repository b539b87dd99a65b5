"""`poollab demo`: the talk's claims about concurrency in Python, each one measured on the spot.

Every experiment is a module with a ``run(ctx) -> DemoResult`` function; the registry names
them and the CLI runs them. This package's import stays light (no rich, no matplotlib) because
spawned children of the start-method experiment import it.
"""
