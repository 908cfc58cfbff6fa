"""Methods: the record, the catalog (name -> record), methods brought through config, the embedding
contract, and the benchmark's glue to ScDiVa (the model under test, used by every task)."""
