// The executor client; see executor_client.hpp.
#include "agent/executor_client.hpp"

#include <uv.h>

namespace cx::agent {

using proto::decode_response;
using proto::encode_request;
using proto::FrameStatus;

struct ExecutorCall::State : std::enable_shared_from_this<ExecutorCall::State> {
  event::Loop& loop;
  DoneFn done;
  uv_pipe_t* pipe = nullptr;
  std::unique_ptr<event::Timer> defer;
  std::unique_ptr<event::Timer> deadline;
  std::string frame;
  std::string in;
  bool finished = false;

  explicit State(event::Loop& l) : loop(l) {}
  ~State() { close_pipe(); }

  void close_pipe() {
    event::detail::close_and_delete(pipe);
    pipe = nullptr;
  }

  void finish(ExecResponse r) {
    if (finished) return;
    finished = true;
    deadline.reset();
    close_pipe();
    auto fn = std::move(done);
    if (fn) fn(std::move(r));
  }

  void fail(const std::string& why) {
    ExecResponse r;
    r.exit = -1;
    r.err = "executor unreachable: " + why;
    finish(std::move(r));
  }

  // Defers a failure to the next loop iteration (start() must not call `done`).
  void fail_later(const std::string& why) {
    defer = std::make_unique<event::Timer>(loop);
    std::weak_ptr<State> weak = shared_from_this();
    defer->start(0, [weak, why] {
      if (auto s = weak.lock()) s->fail(why);
    });
  }

  void on_data(std::string_view d) {
    in.append(d);
    auto dec = decode_response(in);
    if (dec.status == FrameStatus::complete)
      finish(std::move(dec.response));
    else if (dec.status == FrameStatus::error)
      fail(dec.error);
  }
};

namespace {

// The pipe's data points at this until the connection is made; afterwards at the State.
struct PipeCtx {
  std::weak_ptr<ExecutorCall::State> state;
};

} // namespace

std::unique_ptr<ExecutorCall> ExecutorCall::start(event::Loop& loop, const std::string& socket_path,
                                                  const ExecRequest& req, DoneFn done,
                                                  uint64_t timeout_ms) {
  std::unique_ptr<ExecutorCall> call(new ExecutorCall());
  auto st = std::make_shared<State>(loop);
  call->state_ = st;
  st->done = std::move(done);
  if (timeout_ms > 0) {
    st->deadline = std::make_unique<event::Timer>(loop);
    std::weak_ptr<State> weak = st;
    st->deadline->start(timeout_ms, [weak, timeout_ms] {
      if (auto s = weak.lock())
        s->fail("no answer within " + std::to_string(timeout_ms / 1000) + "s");
    });
  }
  auto frame = encode_request(req);
  if (!frame.ok()) {
    st->fail_later(frame.message());
    return call;
  }
  st->frame = std::move(*frame);

  st->pipe = new uv_pipe_t;
  uv_pipe_init(loop.get(), st->pipe, 0);
  auto* ctx = new PipeCtx{st};
  st->pipe->data = ctx;
  // The context is freed with the connect request, which libuv always completes (also when
  // the pipe is closed first, with UV_ECANCELED).
  auto* creq = new uv_connect_t;
  creq->data = ctx;
  uv_pipe_connect(creq, st->pipe, socket_path.c_str(), [](uv_connect_t* r, int status) {
    std::unique_ptr<uv_connect_t> owned(r);
    std::unique_ptr<PipeCtx> ctx(static_cast<PipeCtx*>(r->data));
    auto s = ctx->state.lock();
    if (!s || s->finished) return;
    if (status < 0) {
      s->fail(event::uv_error(status));
      return;
    }
    // From here the pipe's data is the state's raw pointer, checked through `finished`.
    s->pipe->data = s.get();
    struct Write {
      uv_write_t req;
      std::string data;
      std::weak_ptr<ExecutorCall::State> state;
    };
    auto* w = new Write{{}, s->frame, s};
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(s->pipe), &buf, 1,
                      [](uv_write_t* wr, int st2) {
                        std::unique_ptr<Write> owned(reinterpret_cast<Write*>(wr));
                        if (st2 < 0)
                          if (auto s2 = owned->state.lock()) s2->fail(event::uv_error(st2));
                      });
    if (rc < 0) {
      delete w;
      s->fail(event::uv_error(rc));
      return;
    }
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(s->pipe),
        [](uv_handle_t*, size_t suggested, uv_buf_t* b) {
          b->base = new char[suggested];
          b->len = suggested;
        },
        [](uv_stream_t* stream, ssize_t n, const uv_buf_t* b) {
          std::unique_ptr<char[]> owned(b->base);
          auto* raw = static_cast<ExecutorCall::State*>(stream->data);
          if (!raw || raw->finished || n == 0) return;
          auto keep = raw->shared_from_this();
          if (n > 0) {
            raw->on_data(std::string_view(b->base, static_cast<size_t>(n)));
          } else if (n == UV_EOF) {
            raw->fail("connection closed before a complete response");
          } else {
            raw->fail(event::uv_error(static_cast<int>(n)));
          }
        });
  });
  return call;
}

RunOutcome outcome_from_executor(ExecResponse resp) {
  proto::ExecLimits limits = proto::take_exec_limits(resp);
  RunOutcome o;
  o.exit = resp.exit;
  o.out = std::move(resp.out);
  o.err = std::move(resp.err);
  o.truncated = limits.truncated;
  if (limits.timed_out) {
    o.timed_out = true;
    o.error = "script timed out after " + std::to_string(*limits.timed_out) + "s";
  }
  return o;
}

uint64_t executor_call_timeout_ms(int64_t script_timeout_s) {
  if (script_timeout_s <= 0) return 0;
  return static_cast<uint64_t>(script_timeout_s) * 1000 + kExecutorGraceMs;
}

ExecutorCall::~ExecutorCall() {
  if (state_) {
    state_->finished = true;
    state_->done = nullptr;
    state_->defer.reset();
    state_->deadline.reset();
    state_->close_pipe();
  }
}

} // namespace cx::agent
