"""Multi-task benchmark of ScDiVa's task heads and its statistics."""
