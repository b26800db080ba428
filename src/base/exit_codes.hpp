// The process exit statuses of every applet, named by what the original means by them
// (dispatcher-and-api §4.1, agent-and-wire §1.1, §5.4). Several meanings share a number; each
// name says which one a `return` means.
#pragma once

namespace cx {

inline constexpr int kExitOk = 0;
// Done, but it did not work: a host failed, a request was denied or locked, a run not found.
inline constexpr int kExitFailure = 1;
// A bad command line: an unknown mode or option, a bad option value.
inline constexpr int kExitUsage = 2;
// Unknown agents: the original's `die` exits with errno, which its registry lookup has left at
// ENOENT (transcript 09).
inline constexpr int kExitUnknownAgent = 2;
// `wait`: the run is not complete by the deadline.
inline constexpr int kExitIncomplete = 2;
// The background half of `request-pairing --background`: no answer within --timeout, or denied
// (a nonce that does not match counts as denied).
inline constexpr int kExitPairingTimeout = 2;
inline constexpr int kExitPairingDenied = 3;
// sysexits' EX_CONFIG: a bad config or an unpaired agent, which a restart cannot fix (the
// systemd units set RestartPreventExitStatus=78).
inline constexpr int kExitConfig = 78;
// A re-executed child of ours that could not execute the binary (the shell's convention).
inline constexpr int kExitExecFailed = 127;
// A fatal error: the original's `die` (255 when errno is not set).
inline constexpr int kExitFatal = 255;

} // namespace cx
