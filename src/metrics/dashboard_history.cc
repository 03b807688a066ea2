#include "metrics/dashboard_history.h"

#include <fmt/format.h>

namespace hermod::metrics {

void SampleRing::Add(const Sample& sample) {
  std::lock_guard lock(mutex_);
  samples_[next_] = sample;
  next_ = (next_ + 1) % kCapacity;
  if (count_ < kCapacity) ++count_;
}

std::vector<Sample> SampleRing::Since(uint64_t after_ms) const {
  std::vector<Sample> out;
  std::lock_guard lock(mutex_);
  out.reserve(count_);
  for (size_t i = 0; i < count_; ++i) {
    const Sample& s = samples_[(next_ + kCapacity - count_ + i) % kCapacity];
    if (s.at_ms > after_ms) out.push_back(s);
  }
  return out;
}

std::vector<Sample> SampleRing::Last2() const {
  std::vector<Sample> out;
  std::lock_guard lock(mutex_);
  const size_t n = count_ < 2 ? count_ : 2;
  for (size_t i = 0; i < n; ++i) out.push_back(samples_[(next_ + kCapacity - n + i) % kCapacity]);
  return out;
}

std::string SamplesJson(const std::vector<Sample>& samples) {
  std::string out = "{\"interval_ms\":1000";
  auto back = std::back_inserter(out);
  auto column = [&](const char* name, auto field) {
    fmt::format_to(back, ",\"{}\":[", name);
    for (size_t i = 0; i < samples.size(); ++i) {
      if (i > 0) out += ',';
      fmt::format_to(back, "{}", samples[i].*field);
    }
    out += ']';
  };
  column("at_ms", &Sample::at_ms);
  column("connections", &Sample::connections);
  column("messages_in", &Sample::messages_in);
  column("messages_out", &Sample::messages_out);
  column("bytes_read", &Sample::bytes_read);
  column("bytes_written", &Sample::bytes_written);
  column("publications_out", &Sample::publications_out);
  column("commands", &Sample::commands);
  column("api_calls", &Sample::api_calls);
  column("cpu_seconds", &Sample::cpu_seconds);
  column("resident_bytes", &Sample::resident_bytes);
  column("clients", &Sample::clients);
  column("users", &Sample::users);
  column("channels", &Sample::channels);
  column("subscriptions", &Sample::subscriptions);
  out += "}\n";
  return out;
}

}  // namespace hermod::metrics
