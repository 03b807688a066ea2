// A loop on its own thread for the NATS client's tests: everything touching a client runs on
// it (Run waits for the result).
#pragma once

#include <future>
#include <thread>

#include "net/event_loop.h"

namespace hermod::test {

class LoopThread {
 public:
  LoopThread() : thread_([this] { loop_.Run(); }) {}
  ~LoopThread() {
    loop_.Post([this] { loop_.Stop(); });
    thread_.join();
  }
  template <class F>
  auto Run(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    loop_.Post([&task] { task(); });
    return result.get();
  }
  net::Loop& loop() { return loop_; }

 private:
  net::Loop loop_{0};
  std::thread thread_;
};

}  // namespace hermod::test
