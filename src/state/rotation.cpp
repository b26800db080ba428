// src/state/rotation: placeholder; implemented with its issue.
