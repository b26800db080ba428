// src/state/registry: placeholder; implemented with its issue.
