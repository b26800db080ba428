// Tests for src/state/session_cache.cpp (tag [state]); placeholder until it lands.
