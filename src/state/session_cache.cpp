// src/state/session_cache: placeholder; implemented with its issue.
