// The dashboard's memory: the last ten minutes of once-a-second samples, kept by the server so
// that a page opened (or reloaded) now draws what happened before it. A fixed ring of
// kCapacity samples (about 120 bytes each: 72 KiB in all), allocated once; the oldest sample
// is overwritten. Counters are cumulative, as the loops count them: the page differences
// consecutive samples into rates, so one late sample widens an interval and loses nothing.
//
// Written by the sampler on the first loop, read by the dashboard's routes on any loop and by
// the broker's sender thread (NodeJson): one mutex, a leaf, held for a copy.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace hermod::metrics {

struct Sample {
  uint64_t at_ms = 0;  // Unix time
  uint64_t connections = 0;
  uint64_t messages_in = 0;  // WebSocket messages, cumulative
  uint64_t messages_out = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t publications_out = 0;  // publication pushes delivered
  uint64_t commands = 0;
  uint64_t api_calls = 0;
  double cpu_seconds = 0;  // user + system, cumulative
  uint64_t resident_bytes = 0;
  uint64_t clients = 0;
  uint64_t users = 0;
  uint64_t channels = 0;
  uint64_t subscriptions = 0;
};

class SampleRing {
 public:
  static constexpr size_t kCapacity = 601;  // ten minutes of intervals, one a second

  void Add(const Sample& sample);
  // Oldest first; only those taken after after_ms (Unix time), so a page asks for what it
  // does not have yet.
  std::vector<Sample> Since(uint64_t after_ms) const;
  // The last two samples (fewer at start), oldest first.
  std::vector<Sample> Last2() const;

 private:
  mutable std::mutex mutex_;  // guards the rest
  std::array<Sample, kCapacity> samples_{};
  size_t next_ = 0;   // where the next sample goes
  size_t count_ = 0;  // how many are held
};

// {"interval_ms":1000,"at_ms":[...],"messages_in":[...],...}: one array per field, oldest
// first.
std::string SamplesJson(const std::vector<Sample>& samples);

}  // namespace hermod::metrics
