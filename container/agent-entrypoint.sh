#!/bin/sh
# Entrypoint of the agent image (container/Dockerfile.agent). Two phases: without a cert it
# requests pairing with $DISPATCHER_HOST and exits 0 (approve on the dispatcher, then start
# the container again); with a cert it starts the executor (ctrl-exec-exec, root), which runs
# the scripts under their profiles, and then serves on 7443 as PID 1, as the ctrl-exec-agent
# user. Without the executor's privileges it stops rather than run scripts unconfined.
# The contract is the container guide (spec/DOCKER.md); deliberate differences are listed in
# docs/COMPATIBILITY.md, "Containers and service units".
set -e

CONF_DIR=/etc/ctrl-exec-agent
CERT="$CONF_DIR/agent.crt"
AGENT_CONF="$CONF_DIR/agent.conf"
STATE_DIR=/var/lib/ctrl-exec-agent
AGENT_USER=ctrl-exec-agent
EXECUTOR_WAIT_TICKS=100 # x 0.05 s: how long the executor has to create its socket
EXAMPLES=/usr/share/ctrl-exec/examples
TAGS_BEGIN="# BEGIN tags written by the container entrypoint from AGENT_ENV and AGENT_ROLE"
TAGS_END="# END tags written by the container entrypoint"

# A value written into a config file must be one line: a newline would smuggle in more keys.
one_line() {
    case "$2" in
        *'
'*)
            echo "[entrypoint] ERROR: $1 must not contain a newline." >&2
            exit 1
            ;;
    esac
}

# executor_socket as the agent reads it from agent.conf: a "key = value" line before the first
# [section] (keys inside sections are not top-level), the last one winning. Empty when unset.
executor_socket() {
    awk '/^[[:space:]]*\[/ { exit }
        /^[[:space:]]*executor_socket[[:space:]]*=/ {
            v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]+$/, "", v); s = v
        }
        END { print s }' "$AGENT_CONF"
}

# The capabilities the executor needs that this container lacks (docs/CONTAINERS.md):
# CAP_SYS_ADMIN (bit 21) for each run's mount namespace, CAP_SETUID (7) and CAP_SETGID (6) for
# run_as, CAP_SETPCAP (8) for the bounding set. Docker's default set has all but CAP_SYS_ADMIN,
# and its default seccomp profile also blocks unshare and mount without CAP_SYS_ADMIN.
missing_executor_caps() {
    eff=$(awk '$1 == "CapEff:" { print $2 }' /proc/self/status 2>/dev/null)
    if [ -z "$eff" ]; then
        echo "CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_SETPCAP (/proc/self/status unreadable)"
        return
    fi
    low=$((0x${eff#????????})) # the low 32 bits hold all four
    missing=""
    for cap in SYS_ADMIN:21 SETUID:7 SETGID:6 SETPCAP:8; do
        [ $(((low >> ${cap#*:}) & 1)) -eq 1 ] || missing="$missing CAP_${cap%:*}"
    done
    echo "${missing# }"
}

# Starts `ctrl-exec-exec serve` in the background and waits (bounded) for its socket. Any
# failure stops the container: the agent never starts with an executor_socket nobody serves.
start_executor() {
    sock=$1
    missing=$(missing_executor_caps)
    if [ -n "$missing" ]; then
        echo "[entrypoint] ERROR: the executor (executor_socket = $sock in agent.conf) needs $missing, which this container lacks: add it (cap_add: [SYS_ADMIN], see docs/CONTAINERS.md), or comment out executor_socket in agent.conf to run scripts unconfined as $AGENT_USER. Not starting the agent." >&2
        exit 1
    fi
    dir=$(dirname "$sock")
    [ -d "$dir" ] || { mkdir -p "$dir" && chmod 0755 "$dir"; }
    # A socket left by the previous start (`docker restart` keeps /run) is not a live executor.
    if [ -S "$sock" ]; then rm -f "$sock"; fi
    echo "[entrypoint] Starting the executor (ctrl-exec-exec) on $sock..."
    ctrl-exec-exec serve "$sock" "$AGENT_CONF" "$CONF_DIR/scripts.conf" "$AGENT_USER" &
    executor=$!
    ticks=0
    while [ ! -S "$sock" ]; do
        if ! kill -0 "$executor" 2>/dev/null; then
            rc=0
            wait "$executor" || rc=$?
            echo "[entrypoint] ERROR: the executor exited (status $rc) before creating $sock; not starting the agent." >&2
            exit 1
        fi
        if [ "$ticks" -ge "$EXECUTOR_WAIT_TICKS" ]; then
            kill "$executor" 2>/dev/null || true
            echo "[entrypoint] ERROR: the executor did not create $sock within $((EXECUTOR_WAIT_TICKS / 20)) s; not starting the agent." >&2
            exit 1
        fi
        sleep 0.05
        ticks=$((ticks + 1))
    done
    echo "[entrypoint] Executor ready."
}

# Runs a test(1) as the agent's user: can the agent read (-r) or search (-x) this path?
agent_can() {
    su-exec "$AGENT_USER" test "$1" "$2"
}

# The agent reads its config, key and certs from $CONF_DIR as $AGENT_USER. request-pairing and
# the image leave them root:ctrl-exec-agent, group-readable; files placed there otherwise (a
# restored backup, a bind mount) are given to the group. A file that is already readable is
# not touched, so a read-only mount of readable files is fine.
grant_agent_read() {
    for f in "$CONF_DIR" "$AGENT_CONF" "$CONF_DIR/scripts.conf" "$CONF_DIR/agent.key" \
        "$CERT" "$CONF_DIR/ca.crt" "$CONF_DIR/revoked-serials"; do
        [ -e "$f" ] || continue
        if [ -d "$f" ]; then need=-x bits=g+rx; else need=-r bits=g+r; fi
        agent_can "$need" "$f" && continue
        if ! { chgrp "$AGENT_USER" "$f" && chmod "$bits" "$f"; }; then
            echo "[entrypoint] ERROR: $f is not readable by $AGENT_USER and cannot be made so." >&2
            exit 1
        fi
        echo "[entrypoint] Made $f readable by group $AGENT_USER."
    done
}

if [ -z "$DISPATCHER_HOST" ]; then
    echo "[entrypoint] ERROR: DISPATCHER_HOST environment variable not set." >&2
    exit 1
fi

# The image seeds agent.conf and scripts.conf into a fresh named volume; a bind-mounted empty
# directory gets the same examples here. Existing files are never touched.
for f in agent.conf scripts.conf; do
    if [ ! -f "$CONF_DIR/$f" ]; then
        cp "$EXAMPLES/$f" "$CONF_DIR/$f"
        chmod 640 "$CONF_DIR/$f"
        chgrp ctrl-exec-agent "$CONF_DIR/$f" 2>/dev/null || true
        echo "[entrypoint] No $f found - installed the example at $CONF_DIR/$f"
    fi
done

# Phase 1: not paired yet. request-pairing prints the pairing code and waits until the
# operator approves or denies on the dispatcher (at most its pairing timeout, 600 s).
if [ ! -f "$CERT" ]; then
    echo "[entrypoint] No cert found - requesting pairing with $DISPATCHER_HOST..."
    ctrl-exec-agent request-pairing --dispatcher "$DISPATCHER_HOST"
    echo "[entrypoint] Pairing request sent. Approve on the dispatcher, then restart this container."
    exit 0
fi

# Phase 2: serve. First the [tags] reported in /capabilities, when AGENT_ENV or AGENT_ROLE is
# set. The block sits between two marker lines and is replaced, never appended again, on
# each start; an operator's own [tags] section in agent.conf wins and is left alone.
if [ -n "$AGENT_ENV" ] || [ -n "$AGENT_ROLE" ]; then
    one_line AGENT_ENV "$AGENT_ENV"
    one_line AGENT_ROLE "$AGENT_ROLE"
    strip_tags_block() {
        awk -v b="$TAGS_BEGIN" -v e="$TAGS_END" \
            '$0 == b { skip = 1; next } skip && $0 == e { skip = 0; next } !skip' "$AGENT_CONF"
    }
    if strip_tags_block | grep -qi '^[[:space:]]*\[[[:space:]]*tags[[:space:]]*\][[:space:]]*$'; then
        echo "[entrypoint] agent.conf has its own [tags] section - AGENT_ENV/AGENT_ROLE not applied."
    else
        tmp="$AGENT_CONF.entrypoint-new"
        cp -p "$AGENT_CONF" "$tmp"
        {
            # awk ends every line it prints, so the block starts on a line of its own.
            strip_tags_block
            echo "$TAGS_BEGIN"
            echo "[tags]"
            echo "env  = ${AGENT_ENV:-production}"
            echo "role = ${AGENT_ROLE:-agent}"
            echo "$TAGS_END"
        } > "$tmp"
        if cmp -s "$tmp" "$AGENT_CONF"; then
            rm -f "$tmp"
        else
            mv -f "$tmp" "$AGENT_CONF"
            echo "[entrypoint] Tags written to agent.conf: env=${AGENT_ENV:-production} role=${AGENT_ROLE:-agent}"
        fi
    fi
fi

# Optional: forward the daemon facility to a remote syslog collector over TLS, as in the
# dispatcher image. Only in the serving phase: the pairing phase above has already exited.
if [ -n "$SYSLOG_HOST" ]; then
    SYSLOG_PORT="${SYSLOG_PORT:-6514}"
    one_line SYSLOG_HOST "$SYSLOG_HOST"
    one_line SYSLOG_PORT "$SYSLOG_PORT"
    echo "[entrypoint] Configuring syslog forwarding to $SYSLOG_HOST:$SYSLOG_PORT..."
    cat > /etc/rsyslog.conf << EOF
# Generated by entrypoint on start. Receives the agent's local syslog and
# forwards it to a remote TLS collector. Server-auth only (anon/x509 name);
# the collector's Let's Encrypt cert validates against the system CA bundle.
global(
    defaultNetstreamDriver="gtls"
    defaultNetstreamDriverCAFile="/etc/ssl/certs/ca-certificates.crt"
)

# Receive the agent's messages from the local /dev/log socket.
module(load="imuxsock")

daemon.* action(
    type="omfwd"
    target="$SYSLOG_HOST"
    port="$SYSLOG_PORT"
    protocol="tcp"
    StreamDriver="gtls"
    StreamDriverMode="1"
    StreamDriverAuthMode="x509/name"
    StreamDriverPermittedPeers="$SYSLOG_HOST"
    template="RSYSLOG_SyslogProtocol23Format"
)
EOF
    rsyslogd
    echo "[entrypoint] rsyslog started; forwarding daemon.* over TLS."
fi

# As root, before the agent (which cannot write $CONF_DIR) starts on it: install a renewed
# certificate that a dispatcher staged, as the service units do. It never fails the start.
ctrl-exec-agent promote-cert

# The agent runs as $AGENT_USER: it reads its files in $CONF_DIR and owns its state (the
# trusted-dispatcher map that pairing wrote as root, async results, staged renewals), also on
# volumes written by an image whose agent ran as root. find does not follow symbolic links
# and chown -h changes a link itself, so nothing the agent planted there leads outside.
grant_agent_read
[ -d "$STATE_DIR" ] || { mkdir -p "$STATE_DIR" && chmod 0750 "$STATE_DIR"; }
find "$STATE_DIR" ! -user "$AGENT_USER" -exec chown -h "$AGENT_USER:$AGENT_USER" {} +

# Privilege separation (spec 4.8): with executor_socket set, the executor runs every script.
# Commenting the key out in agent.conf is the explicit opt-out: scripts then run as the agent.
sock=$(executor_socket)
if [ -n "$sock" ]; then
    start_executor "$sock"
else
    echo "[entrypoint] executor_socket is not set in agent.conf - scripts run as $AGENT_USER, profiles NOT enforced."
fi

# exec: the agent becomes PID 1, so `docker stop` (SIGTERM) and `docker exec agent kill -HUP 1`
# (reload scripts.conf) reach it directly; the executor is its child and ends with it.
# su-exec (Alpine's su-exec package) sets the user, its group and supplementary groups and
# execs the command itself: no shell command line to quote (busybox su takes one), no parent
# left waiting (as util-linux su and sudo stay), no PAM.
echo "[entrypoint] Cert found - starting ctrl-exec-agent serve..."
exec su-exec "$AGENT_USER" ctrl-exec-agent serve
