"""Use-cases: load state, call the engine, write in one transaction, publish after commit."""
