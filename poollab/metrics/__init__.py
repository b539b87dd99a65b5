"""Resource samples of the consumers (RSS, USS, CPU of each whole process tree) and their use."""
