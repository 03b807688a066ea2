#include "app/log_buffer.h"

#include <utility>

namespace hermod::app {

bool LogBuffer::Append(std::string_view line) {
  bool wake, kept;
  {
    std::lock_guard lock(mu_);
    // The writer sleeps only on an empty buffer: a line behind others needs no wake-up (and
    // costs no futex call), the writer takes it with them. A line dropped from an empty buffer
    // (larger than all of it) wakes the writer too, to report it.
    wake = pending_.empty();
    kept = !closed_ && line.size() <= capacity_ - pending_.size();
    if (kept) {
      pending_.append(line);
      appended_bytes_ += line.size();
    } else {
      ++unreported_;
      dropped_total_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (wake) ready_.notify_one();
  return kept;
}

bool LogBuffer::Take(std::string& lines, uint64_t& dropped) {
  lines.clear();
  std::unique_lock lock(mu_);
  ready_.wait(lock, [this] { return !pending_.empty() || unreported_ > 0 || closed_; });
  std::swap(lines, pending_);
  dropped = std::exchange(unreported_, 0);
  return !(closed_ && lines.empty() && dropped == 0);
}

void LogBuffer::MarkWritten(size_t bytes) {
  {
    std::lock_guard lock(mu_);
    written_bytes_ += bytes;
  }
  written_.notify_all();
}

bool LogBuffer::WaitWritten(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const uint64_t target = appended_bytes_;
  return written_.wait_for(lock, timeout, [&] { return written_bytes_ >= target; });
}

void LogBuffer::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  ready_.notify_one();
}

}  // namespace hermod::app
