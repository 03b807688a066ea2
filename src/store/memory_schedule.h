// The `memory` schedule store: nothing outlives the process (core::Scheduler holds the
// pending ones in memory already), so every call succeeds at once.
#pragma once

#include <string>
#include <vector>

#include "core/schedule_store.h"

namespace hermod::store {

class MemoryScheduleStore final : public core::ScheduleStore {
 public:
  const char* name() const override { return "memory"; }
  bool durable() const override { return false; }
  bool Load(std::vector<core::ScheduledPublication>*, std::string*) override { return true; }
  void Put(const core::ScheduledPublication&, std::function<void(bool)> done) override {
    done(true);
  }
  void Remove(const std::string&, std::function<void(bool)> done) override {
    if (done) done(true);
  }
};

}  // namespace hermod::store
