"""``poollab bench``: the same jobs through every pool, side by side, with the report."""
