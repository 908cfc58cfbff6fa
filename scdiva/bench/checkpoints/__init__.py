"""ScDiVa checkpoints as workflow inputs: fetching, adapters for foreign releases, input checks."""
