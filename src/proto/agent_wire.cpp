// src/proto/agent_wire: placeholder; implemented with its issue.
