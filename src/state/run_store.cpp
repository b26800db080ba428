// src/state/run_store: placeholder; implemented with its issue.
