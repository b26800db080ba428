// Tests for src/state/run_store.cpp (tag [state]); placeholder until it lands.
