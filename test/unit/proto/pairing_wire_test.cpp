// Tests for src/proto/pairing_wire.cpp (tag [proto]); placeholder until it lands.
