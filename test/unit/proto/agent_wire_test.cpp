// Tests for src/proto/agent_wire.cpp (tag [proto]); placeholder until it lands.
