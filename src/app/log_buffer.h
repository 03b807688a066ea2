// The bounded buffer between the threads that log and the one thread that writes the log out.
//
// A log call must never wait for the log's reader: a stuck collector or a full pipe would
// otherwise stop the event loop that logged, and every connection on it. So a call appends its
// formatted line here under a short lock and returns; when the line does not fit, it is
// dropped and counted instead. One writer thread takes everything buffered at once (the two
// strings swap, so their capacity is reused) and writes it out; only that thread waits on the
// output. Lines are appended whole, in the order of the lock, so they leave whole and in order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace hermod::app {

class LogBuffer {
 public:
  explicit LogBuffer(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  // Appends a whole line, or drops it when the buffered bytes would pass the capacity (or the
  // buffer is closed): false, and counted. Never waits for the writer.
  bool Append(std::string_view line);

  // The writer's side. Waits until lines are buffered, lines were dropped or the buffer is
  // closed; moves the buffered lines into `lines` (cleared first) and returns in `dropped` the
  // lines dropped since the last Take. false once closed with nothing left to take.
  bool Take(std::string& lines, uint64_t& dropped);
  // After the lines of a Take are out: wakes WaitWritten.
  void MarkWritten(size_t bytes);

  // Waits until every line appended before the call has been marked written, at most
  // `timeout`; false if the writer did not get there in time.
  bool WaitWritten(std::chrono::milliseconds timeout);

  // Take then hands out what is left, then returns false; Append refuses from now on.
  void Close();

  uint64_t dropped_total() const { return dropped_total_.load(std::memory_order_relaxed); }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable ready_;    // the writer waits for lines, drops or Close
  std::condition_variable written_;  // WaitWritten waits for the writer
  std::string pending_;              // guarded by mu_
  uint64_t unreported_ = 0;          // guarded by mu_: dropped since the last Take
  uint64_t appended_bytes_ = 0;      // guarded by mu_: ever appended
  uint64_t written_bytes_ = 0;       // guarded by mu_: ever marked written
  bool closed_ = false;              // guarded by mu_
  std::atomic<uint64_t> dropped_total_{0};
};

}  // namespace hermod::app
