// src/proto/pairing_wire: placeholder; implemented with its issue.
