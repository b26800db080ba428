// Tests for src/state/rotation.cpp (tag [state]); placeholder until it lands.
