// Child processes; see process.hpp.
#include "event/process.hpp"

#include <signal.h>

#include <cerrno>

namespace cx::event {

struct Process::Impl {
  Loop& loop;
  ProcessOptions opts;
  DoneFn done;
  ProcessResult result;

  uv_process_t* proc = nullptr;
  uv_pipe_t* in = nullptr;
  uv_pipe_t* out = nullptr;
  uv_pipe_t* err = nullptr;
  bool stdin_pending = false;
  std::unique_ptr<Timer> deadline, stdin_timer, grace;
  int pid = 0;
  bool exited = false, out_open = false, err_open = false, finished = false;
  // Set when the owning Process is destroyed before the child exited. The process handle then
  // stays open until the exit callback, so libuv still reaps the child (no zombie), and the
  // loop holds the Impl through the adopted handle: its close callback frees both, whether
  // the exit closes it or the loop is destroyed first (then the child is never reaped here).
  bool orphaned = false;

  Impl(Loop& l, ProcessOptions o, DoneFn d) : loop(l), opts(std::move(o)), done(std::move(d)) {}

  void close_handles() {
    deadline.reset();
    stdin_timer.reset();
    grace.reset();
    detail::close_and_delete(in);
    detail::close_and_delete(out);
    detail::close_and_delete(err);
    in = out = err = nullptr;
    if (proc) {
      detail::close_and_delete(proc);
      proc = nullptr;
    }
  }

  void maybe_finish() {
    if (finished || !exited || out_open || err_open) return;
    finished = true;
    close_handles();
    auto fn = std::move(done);
    if (fn) fn(std::move(result));
  }

  void close_stdin() {
    stdin_timer.reset();
    detail::close_and_delete(in);
    in = nullptr;
  }

  void on_output(bool is_out, std::string_view data) {
    std::string& buf = is_out ? result.out : result.err;
    bool& truncated = is_out ? result.out_truncated : result.err_truncated;
    size_t keep = data.size();
    if (opts.output_limit && buf.size() + keep > opts.output_limit) {
      keep = opts.output_limit > buf.size() ? opts.output_limit - buf.size() : 0;
      truncated = true;
    }
    buf.append(data.substr(0, keep));
    if (keep && opts.on_output) opts.on_output(is_out, data.substr(0, keep));
  }

  void on_eof(bool is_out) {
    uv_pipe_t*& p = is_out ? out : err;
    detail::close_and_delete(p);
    p = nullptr;
    (is_out ? out_open : err_open) = false;
    maybe_finish();
  }
};

namespace {
Process::Impl* impl_of(void* data) {
  return static_cast<Process::Impl*>(data);
}

// The read callback of one pipe; `IsOut` tells stdout from stderr, as a callback has no room
// for it (the pipe's data pointer is the Impl).
template <bool IsOut> void on_pipe_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  std::unique_ptr<char[]> owned(buf->base);
  auto* impl = impl_of(s->data);
  if (!impl || n == 0) return;
  if (n > 0)
    impl->on_output(IsOut, std::string_view(buf->base, static_cast<size_t>(n)));
  else
    impl->on_eof(IsOut);
}

void start_reading(Process::Impl* impl, uv_pipe_t* pipe, bool is_out) {
  pipe->data = impl;
  auto alloc = [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
    buf->base = new char[suggested];
    buf->len = suggested;
  };
  uv_read_start(reinterpret_cast<uv_stream_t*>(pipe), alloc,
                is_out ? on_pipe_read<true> : on_pipe_read<false>);
}

// execve() failures are reported by uv_spawn through its exec-error pipe; fork and pipe
// failures are resource problems. The agent maps them to exit 127 and -1 respectively.
bool is_spawn_resource_error(int uv_code) {
  return uv_code == UV_EAGAIN || uv_code == UV_ENOMEM || uv_code == UV_EMFILE ||
         uv_code == UV_ENFILE;
}
} // namespace

std::unique_ptr<Process> Process::start(Loop& loop, ProcessOptions opts, DoneFn done) {
  std::unique_ptr<Process> p(new Process());
  auto impl = std::make_shared<Impl>(loop, std::move(opts), std::move(done));
  p->impl_ = impl;
  Impl* im = impl.get();
  const ProcessOptions& o = im->opts;

  std::vector<char*> argv;
  for (auto& a : im->opts.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (o.env) {
    for (auto& e : *im->opts.env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }

  im->in = new uv_pipe_t;
  uv_pipe_init(loop.get(), im->in, 0);
  im->in->data = im;
  std::vector<uv_stdio_container_t> stdio(3 + o.inherit_fds.size());
  for (size_t i = 0; i < o.inherit_fds.size(); ++i) {
    stdio[3 + i].flags = UV_INHERIT_FD;
    stdio[3 + i].data.fd = o.inherit_fds[i];
  }
  stdio[0].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE);
  stdio[0].data.stream = reinterpret_cast<uv_stream_t*>(im->in);
  if (o.capture_output) {
    im->out = new uv_pipe_t;
    im->err = new uv_pipe_t;
    uv_pipe_init(loop.get(), im->out, 0);
    uv_pipe_init(loop.get(), im->err, 0);
    im->out->data = im->err->data = im;
    stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(im->out);
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(im->err);
  } else {
    stdio[1].flags = UV_IGNORE;
    stdio[2].flags = UV_IGNORE;
  }

  uv_process_options_t uo{};
  uo.file = argv[0];
  uo.args = argv.data();
  uo.env = o.env ? envp.data() : nullptr;
  uo.cwd = o.cwd.empty() ? nullptr : o.cwd.c_str();
  uo.stdio_count = static_cast<int>(stdio.size());
  uo.stdio = stdio.data();
  // A new session for every child: the deadline kill reaches its whole process group.
  uo.flags = UV_PROCESS_DETACHED;
  if (o.uid) {
    uo.flags |= UV_PROCESS_SETUID;
    uo.uid = *o.uid;
  }
  if (o.gid) {
    uo.flags |= UV_PROCESS_SETGID;
    uo.gid = *o.gid;
  }
  uo.exit_cb = [](uv_process_t* h, int64_t status, int term_signal) {
    auto* impl = impl_of(h->data);
    if (!impl) return;
    impl->exited = true;
    if (impl->orphaned) {
      impl->loop.close_adopted(reinterpret_cast<uv_handle_t*>(h)); // frees h and the Impl
      return;
    }
    if (term_signal) {
      impl->result.outcome = ProcessResult::Outcome::signaled;
      impl->result.signal = term_signal;
    } else {
      impl->result.outcome = ProcessResult::Outcome::exited;
      impl->result.exit_code = static_cast<int>(status);
    }
    impl->deadline.reset();
    if (impl->result.timed_out && (impl->out_open || impl->err_open)) {
      // Something outside the killed group may still hold the pipes; do not wait forever.
      impl->grace = std::make_unique<Timer>(impl->loop);
      impl->grace->start(1000, [impl] {
        impl->out_open = impl->err_open = false;
        impl->maybe_finish();
      });
    }
    impl->maybe_finish();
  };

  im->proc = new uv_process_t;
  im->proc->data = im;
  if (argv[0] == nullptr) {
    im->proc->data = nullptr;
    delete im->proc;
    im->proc = nullptr;
    im->result.outcome = ProcessResult::Outcome::spawn_failed;
    im->result.error = "empty argv";
    im->result.error_code = UV_EINVAL;
  } else {
    int rc = uv_spawn(loop.get(), im->proc, &uo);
    if (rc != 0) {
      // libuv requires the handle to be closed even when spawning failed.
      detail::close_and_delete(im->proc);
      im->proc = nullptr;
      im->result.outcome = is_spawn_resource_error(rc) ? ProcessResult::Outcome::spawn_failed
                                                       : ProcessResult::Outcome::exec_failed;
      im->result.error_code = rc;
      im->result.error = uv_error(rc);
    }
  }
  if (!im->proc) {
    // Report on a later iteration so callers never see `done` re-enter them from start().
    im->close_handles();
    im->exited = true;
    im->grace = std::make_unique<Timer>(loop);
    std::weak_ptr<Impl> weak = impl;
    im->grace->start(0, [weak] {
      if (auto s = weak.lock()) s->maybe_finish();
    });
    return p;
  }

  im->pid = im->proc->pid;
  p->pid_ = im->pid;
  if (o.detached) uv_unref(reinterpret_cast<uv_handle_t*>(im->proc));

  if (o.capture_output) {
    im->out_open = im->err_open = true;
    start_reading(im, im->out, true);
    start_reading(im, im->err, false);
  }

  if (o.timeout_ms) {
    im->deadline = std::make_unique<Timer>(loop);
    im->deadline->start(o.timeout_ms, [im] {
      im->result.timed_out = true;
      uv_kill(-im->pid, SIGKILL);
    });
  }

  // Write stdin, then close it so the child sees EOF.
  if (im->opts.stdin_data.empty()) {
    im->close_stdin();
  } else {
    // The request owns its copy of the data: libuv may complete it (cancelled) after the
    // Process is gone, when the pipe's close is processed.
    struct StdinWrite {
      uv_write_t req;
      std::string data;
    };
    auto* w = new StdinWrite{{}, im->opts.stdin_data};
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc =
        uv_write(&w->req, reinterpret_cast<uv_stream_t*>(im->in), &buf, 1, [](uv_write_t* r, int) {
          std::unique_ptr<StdinWrite> owned(reinterpret_cast<StdinWrite*>(r));
          auto* impl = impl_of(r->handle->data);
          if (!impl) return;
          impl->stdin_pending = false;
          impl->close_stdin();
        });
    if (rc != 0) delete w;
    if (rc != 0) {
      im->close_stdin(); // the child exited or closed stdin early: not an error for us
    } else {
      im->stdin_pending = true;
      if (o.stdin_timeout_ms) {
        im->stdin_timer = std::make_unique<Timer>(loop);
        im->stdin_timer->start(o.stdin_timeout_ms, [im] {
          if (!im->stdin_pending || !im->in) return;
          im->result.stdin_timed_out = true;
          im->result.stdin_unwritten = im->in->write_queue_size;
          im->stdin_pending = false;
          im->close_stdin();
          if (im->opts.on_stdin_timeout) im->opts.on_stdin_timeout(im->result.stdin_unwritten);
        });
      }
    }
  }
  return p;
}

Process::~Process() {
  if (!impl_ || impl_->finished) return;
  impl_->finished = true;
  impl_->done = nullptr;
  impl_->opts.on_output = nullptr;
  bool running = impl_->proc && !impl_->exited;
  if (running && !impl_->opts.detached) uv_kill(-impl_->pid, SIGKILL);
  // A process handle already closing was closed by the loop's destruction: the loop is gone
  // and can adopt nothing.
  if (running && uv_is_closing(reinterpret_cast<uv_handle_t*>(impl_->proc))) running = false;
  if (!running) {
    impl_->close_handles();
    return;
  }
  // Drop everything but the process handle, which stays open until the exit is reaped, and
  // hand the Impl to the loop with it.
  uv_process_t* proc = impl_->proc;
  impl_->proc = nullptr;
  impl_->close_handles();
  impl_->proc = proc;
  impl_->orphaned = true;
  impl_->loop.adopt(reinterpret_cast<uv_handle_t*>(proc), [impl = impl_]() mutable {
    delete impl->proc;
    impl->proc = nullptr;
    impl.reset();
  });
}

void Process::kill_group(int signum) {
  if (impl_ && impl_->pid > 0 && !impl_->exited) uv_kill(-impl_->pid, signum);
}

} // namespace cx::event
