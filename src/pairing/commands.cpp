// The dispatcher's PKI, enrolment and registry commands (dispatcher-and-api §4.8-4.15, §4.19):
// argument checks, the original's exact output, and calls into approve/registry/pki.
#include "pairing/commands.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/hostname.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "cli/cli.hpp"
#include "log/log.hpp"
#include "pairing/approve.hpp"
#include "pki/ca_store.hpp"
#include "pki/dispatcher_identity.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "state/pairing_queue.hpp"
#include "state/registry.hpp"
#include "state/registry_index.hpp"
#include "json/writer.hpp"

namespace cx::pairing {
namespace {

using cli::die;
using cli::DispatcherArgs;
using cli::out;

// setup-ca reads the config only for ca_dir; without a config file the defaults apply.
conf::DispatcherConfig config_or_defaults(const DispatcherArgs& a) {
  auto load = conf::load_dispatcher_config(a.config_path, short_hostname(), true);
  if (load.ok()) {
    cli::log_config_warnings(load->warnings);
    return std::move(load->config);
  }
  return conf::make_dispatcher_config({}, short_hostname()).config;
}

std::optional<pki::KeySpec> key_spec(const DispatcherArgs& a) {
  pki::KeySpec spec; // ECDSA P-256 unless asked otherwise (docs/COMPATIBILITY.md)
  if (!a.key_type || *a.key_type == "ec") return spec;
  if (*a.key_type == "rsa") {
    spec.type = pki::KeyType::rsa;
    spec.rsa_bits = 4096;
    return spec;
  }
  std::fprintf(stderr, "--key-type must be 'ec' or 'rsa'\n");
  return std::nullopt;
}

// /etc/ctrl-exec is 0750 root:ctrl-exec (§1.3); only a directory we create is given that.
Status make_config_dir(const std::string& dir) {
  if (is_directory(dir)) return {};
  CX_TRY(make_dirs(dir, 0750));
  if (auto gid = lookup_group("ctrl-exec")) {
    if (::chown(dir.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      // Not permitted for an unprivileged user: the directory still works for them.
    }
  }
  return {};
}

// One column of the list-agents table as "%-<width>s  " prints a C string: its bytes up to any
// NUL, spaces up to `width`, then the two spaces between columns.
void append_column(std::string& s, std::string_view v, size_t width) {
  v = v.substr(0, v.find('\0'));
  s.append(v);
  if (v.size() < width) s.append(width - v.size(), ' ');
  s.append("  ");
}

std::string or_default(const std::string& v, const char* fallback) {
  return v.empty() ? fallback : v;
}

} // namespace

int cmd_setup_ca(const DispatcherArgs& a) {
  auto spec = key_spec(a);
  if (!spec) return kExitUsage;
  conf::DispatcherConfig config = config_or_defaults(a);
  pki::CaStore store{config.ca_dir.empty() ? paths::dispatcher_etc() : config.ca_dir};
  out("Setting up dispatcher CA...\n");
  if (path_exists(store.key_path()) && !a.force)
    return die("CA already exists at '" + store.key_path() + "'. Use --force to overwrite.");
  if (auto st = make_config_dir(store.dir); !st.ok()) return die(st.message());

  // Everything is made in memory first, so a failure leaves an existing CA untouched.
  auto key = pki::generate_key(*spec);
  if (!key.ok()) return die("Cannot generate the CA key: " + key.message());
  auto cert = pki::create_ca_cert(*key);
  if (!cert.ok()) return die("Cannot create the CA certificate: " + cert.message());
  // ca.serial starts from a random serial rather than the original's `01`, so that a Perl
  // dispatcher sharing this directory (which increments it with openssl) also issues serials
  // with hex letters, which its agents read correctly (agent-and-wire §4.2.1).
  WriteOptions key_opts;
  key_opts.mode = 0600;
  WriteOptions cert_opts;
  cert_opts.mode = 0644;
  Status st = write_file_atomic(store.key_path(), *key, key_opts);
  if (st.ok()) st = write_file_atomic(store.cert_path(), *cert, cert_opts);
  if (st.ok()) st = pki::write_ca_serial(store.serial_path(), pki::new_serial(), 0600);
  if (!st.ok()) return die(st.message());
  out("CA created:\n  Key:  " + store.key_path() + "\n  Cert: " + store.cert_path() +
      "\nKeep ca.key secure - it never leaves this host.\n");
  return 0;
}

int cmd_setup_ctrl_exec(const DispatcherArgs& a) {
  auto spec = key_spec(a);
  if (!spec) return kExitUsage;
  auto config = cli::load_config(a.config_path, false);
  if (!config) return kExitFatal;
  pki::CaStore store{config->ca_dir.empty() ? paths::dispatcher_etc() : config->ca_dir};
  if (!path_exists(store.key_path()))
    return die("CA key not found at '" + store.key_path() + "' - run setup-ca first");

  if (path_exists(config->cert)) {
    size_t agents = state::Registry(config->registry_dir).list_hostnames().size();
    if (agents > 0) {
      out("WARNING: Existing dispatcher cert found.\n  " + std::to_string(agents) +
          (agents == 1 ? " registered agent" : " registered agents") +
          " will require re-pairing after this operation.\n"
          "  Operations (run/ping) continue to work until agent certs expire.\n"
          "  /capabilities will be rejected by agents until re-paired.\n\n"
          "Proceed? [y/N]: ");
      std::string answer;
      if (!std::getline(std::cin, answer) || (trim(answer) != "y" && trim(answer) != "Y")) {
        out("Aborted.\n");
        return 0;
      }
    } else {
      out("Existing dispatcher cert found. No registered agents - replacing.\n");
    }
  }

  out("Generating dispatcher certificate...\n");
  // Always 825 days, whatever cert_days says (§4.13).
  auto id = pki::issue_dispatcher_identity(store, *spec, 825);
  if (!id.ok()) return die(id.message());
  if (auto st =
          pki::write_dispatcher_identity(*id, config->cert, config->key, config->service_user);
      !st.ok())
    return die(st.message());
  out("dispatcher cert created:\n  Key:  " + config->key + "\n  Cert: " + config->cert +
      "\nRun 'ctrl-exec-dispatcher pairing-mode' to re-pair agents as needed.\n");
  return 0;
}

int cmd_list_requests(const DispatcherArgs&) {
  state::PairingQueue queue(paths::pairing_dir());
  auto reqs = queue.list(unix_now());
  if (reqs.empty()) {
    out("No pending pairing requests.\n");
    return 0;
  }
  std::string s = strprintf("%-10s  %-24s  %-16s  %-28s  %s\n", "ID", "HOSTNAME", "SOURCE IP",
                            "REVERSE DNS", "CODE");
  s += std::string(92, '-') + "\n";
  for (const auto& r : reqs) {
    std::string src = !r.source_ip.empty() ? r.source_ip : !r.ip.empty() ? r.ip : "?";
    std::string rdns =
        r.reverse_dns.empty() ? "-" : r.reverse_dns + (r.reverse_confirmed ? " (ok)" : " (?)");
    s += strprintf("%-10s  %-24s  %-16s  %-28s  %s\n", r.id.c_str(), r.hostname.c_str(),
                   src.c_str(), rdns.c_str(), r.code.empty() ? "??????" : r.code.c_str());
  }
  s += "\nReverse DNS is how this dispatcher resolves each agent's IP; (ok) = forward-confirmed.\n"
       "Approve shows the exact edit-agent command if a name will not resolve here.\n";
  out(s);
  return 0;
}

int cmd_approve(const DispatcherArgs& a) {
  if (a.words.empty()) return die("Usage: ctrl-exec-dispatcher approve <reqid>");
  ApproveOverrides o{a.lookup_by, a.ip, a.agent_port};
  if (auto msg = check_approve_overrides(o); !msg.empty()) return die(msg);
  auto config = cli::load_config(a.config_path, true);
  if (!config) return kExitFatal;
  ApproveContext ctx = approve_context(*config);
  auto res = approve_request(ctx, a.words[0], o);
  if (!res.ok()) return die(res.message());
  if (res->dispatcher_serial.empty())
    std::fputs(empty_serial_warning(ctx.cert_path).c_str(), stderr);
  out(format_approval(*res));
  return 0;
}

int cmd_deny(const DispatcherArgs& a) {
  if (a.words.empty()) return die("Usage: ctrl-exec-dispatcher deny <reqid>");
  auto config = cli::load_config(a.config_path, true);
  if (!config) return kExitFatal;
  if (auto st = deny_request(approve_context(*config), a.words[0]); !st.ok())
    return die(st.message());
  out("Denied request '" + a.words[0] + "'.\n");
  return 0;
}

int cmd_list_agents(const DispatcherArgs& a) {
  auto config = cli::load_config(a.config_path, true);
  if (!config) return kExitFatal;
  std::optional<state::TagFilter> filter;
  if (a.tags) {
    auto f = state::parse_tag_filter(*a.tags);
    if (!f.ok()) return die("Invalid --tags filter: " + f.message());
    filter = std::move(*f);
  }
  // Through the registry index, one record decoded at a time: with 10,000 agents, building
  // 10,000 records first would cost more than everything else (issue 14).
  auto all = state::Registry(config->registry_dir).scan();
  if (!all.ok()) {
    if (all.kind() == ErrorKind::denied)
      return die("Cannot access agent registry: permission denied.\n"
                 "Try: sudo ctrl-exec-dispatcher list-agents");
    return die("Cannot access agent registry: " + all.message());
  }
  if (all->size() == 0) {
    out("No registered agents.\n"); // plain text even with --json, as the original
    return 0;
  }
  // Written in pieces of about 64 KiB: the table for 10,000 agents is a megabyte (3 as JSON),
  // and fresh memory is much of what a large listing costs.
  constexpr size_t kFlushBytes = 64 * 1024;
  std::string s;
  s.reserve(kFlushBytes + 4096);
  const int64_t now = unix_now();
  size_t shown = 0;
  state::AgentRecord r;
  for (size_t i : all->by_hostname()) {
    if (filter && !all->tags_match(i, *filter)) continue;
    all->read(i, r);
    if (a.json) {
      s += shown++ == 0 ? '[' : ',';
      s += state::agent_record_json(r);
    } else {
      if (shown++ == 0) {
        s += strprintf("%-30s  %-16s  %-5s  %-8s  %-22s  %-24s  %s\n", "HOSTNAME", "IP", "PORT",
                       "LOOKUP", "PAIRED", "CERT EXPIRY", "DAYS LEFT");
        s += std::string(112, '-') + "\n";
      }
      std::string days = "?";
      if (auto t = parse_openssl_time(r.expiry)) days = std::to_string((*t - now) / 86400);
      append_column(s, or_default(r.hostname, "?"), 30);
      append_column(s, or_default(r.ip, "?"), 16);
      append_column(s, std::to_string(r.port), 5);
      append_column(s, r.lookup_by, 8);
      append_column(s, or_default(r.paired, "?"), 22);
      append_column(s, or_default(r.expiry, "?"), 24);
      s += days + "\n";
    }
    if (s.size() >= kFlushBytes) {
      out(s);
      s.clear();
    }
  }
  if (shown == 0) {
    out("No agents match the tag filter.\n");
    return 0;
  }
  if (a.json) s += "]\n";
  out(s);
  return 0;
}

int cmd_edit_agent(const DispatcherArgs& a) {
  if (a.words.empty())
    return die("Usage: ctrl-exec-dispatcher edit-agent <name> [--rename <new>] [--ip <addr>] "
               "[--agent-port <n>] [--lookup-by ip|hostname] [--json]");
  const std::string& name = a.words[0];
  state::AgentEdit e;
  e.rename = a.rename;
  e.ip = a.ip;
  if (a.agent_port) e.port = *a.agent_port;
  e.lookup_by = a.lookup_by;
  if (e.empty())
    return die(
        "Nothing to change. Pass at least one of --rename, --ip, --agent-port, --lookup-by.");
  if (e.lookup_by && *e.lookup_by != "ip" && *e.lookup_by != "hostname")
    return die("--lookup-by must be 'ip' or 'hostname'");
  if (e.port && (*e.port < 1 || *e.port > 65535))
    return die("--agent-port must be a port number (1-65535)");
  if (e.ip && e.ip->empty()) return die("--ip must not be empty");
  auto config = cli::load_config(a.config_path, true);
  if (!config) return kExitFatal;
  auto res = state::Registry(config->registry_dir).edit(name, e);
  if (!res.ok()) return die("Edit failed: " + res.message());
  const state::AgentRecord& rec = res->record;
  log::Fields fields{{"AGENT", rec.hostname}};
  if (!res->renamed_from.empty()) fields.emplace_back("RENAMED_FROM", res->renamed_from);
  if (e.ip) fields.emplace_back("IP", rec.ip);
  if (e.port) fields.emplace_back("PORT", std::to_string(rec.port));
  if (e.lookup_by) fields.emplace_back("LOOKUP_BY", rec.lookup_by);
  log::info("edit-agent", fields);
  if (a.json) {
    out(state::agent_record_json(rec) + "\n");
    return 0;
  }
  std::string s = "Updated agent '" + rec.hostname + "'.\n";
  if (!res->renamed_from.empty()) s += "  renamed from: " + res->renamed_from + "\n";
  s += "  ip:        " + rec.ip + "\n";
  s += "  port:      " + std::to_string(rec.port) + "\n";
  s += "  lookup_by: " + rec.lookup_by + "\n";
  out(s);
  return 0;
}

int cmd_unpair(const DispatcherArgs& a) {
  if (a.words.empty()) return die("Usage: ctrl-exec-dispatcher unpair <hostname>");
  auto config = cli::load_config(a.config_path, true);
  if (!config) return kExitFatal;
  const std::string& name = a.words[0];
  auto gone = state::Registry(config->registry_dir).remove(name);
  if (!gone.ok()) return die("Unpair failed: " + gone.message());
  log::info("unpair", {{"AGENT", name}, {"EXPIRY", gone->expiry}});
  out("Unregistered '" + name +
      "'.\nWARNING: Agent certificate remains valid until: " + or_default(gone->expiry, "unknown") +
      "\nDecommission the agent promptly or add its serial to the revocation list.\n");
  return 0;
}

} // namespace cx::pairing
