// Tests for src/state/locks.cpp (tag [state]); placeholder until it lands.
