// Tests for src/state/pairing_queue.cpp (tag [state]); placeholder until it lands.
