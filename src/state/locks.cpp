// src/state/locks: placeholder; implemented with its issue.
