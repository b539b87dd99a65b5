"""The lab's HTTP services: the upstream that I/O jobs call, and (later) the collector."""
