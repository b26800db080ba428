// src/state/pairing_queue: placeholder; implemented with its issue.
