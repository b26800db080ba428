// This host's name as the original reports it (agent-and-wire §3.4.2, §5.4): the fully
// qualified name when the resolver knows one containing a dot, else the short hostname.
#pragma once

#include <string>

namespace cx {

// gethostname(), cut at nothing (it may already be qualified).
std::string short_hostname();
// The FQDN rule above. Resolution (getaddrinfo with AI_CANONNAME, so /etc/hosts first) happens
// once per process; later calls return the cached answer.
std::string host_fqdn();

} // namespace cx
