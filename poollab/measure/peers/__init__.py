"""Benchmarking the consumer against its peers: ``python -m poollab.measure.peers``.

The peer modules (:mod:`.peer_arq`, :mod:`.peer_taskiq`, :mod:`.peer_jobs`) run inside the
``.venv-peers`` virtualenv (arq needs redis<6), so they import nothing but the standard
library, aiohttp and their own framework.
"""
