#include "presets.h"

namespace hermod::bench {

bool ApplyPreset(const std::string& name, Protocol protocol, RunConfig& c) {
  const bool echo_only = protocol == Protocol::kEcho;
  if (name == "baseline") {
    c.scenario = echo_only ? Scenario::kEcho : Scenario::kFanout;
    c.connections = 100;
    c.publishers = 1;
    c.rate = echo_only ? 10 : 100;
    c.duration_s = 30;
  } else if (name == "stress") {
    c.scenario = echo_only ? Scenario::kEcho : Scenario::kFanout;
    c.connections = 1000;
    c.publishers = 1;
    c.rate = echo_only ? 0 : 1000;
    c.duration_s = 60;
  } else if (name == "spike") {
    c.scenario = Scenario::kConnect;
    c.connections = 2000;
    c.connect_rate = 2000;
    c.duration_s = 20;
  } else if (name == "endurance") {
    c.scenario = Scenario::kSoak;
    c.load = echo_only ? Scenario::kEcho : Scenario::kFanout;
    c.connections = 500;
    c.rate = 10;
    c.duration_s = 600;
  } else {
    return false;
  }
  return true;
}

}  // namespace hermod::bench
