"""Running the lab's services as local processes: ``poollab up`` and ``poollab status``."""
