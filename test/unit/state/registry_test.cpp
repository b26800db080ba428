// Tests for src/state/registry.cpp (tag [state]); placeholder until it lands.
