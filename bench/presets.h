// The named presets common in WebSocket servers' load-testing suites, mapped onto
// hermod-bench scenarios and scaled to a 2-core machine shared by server and client. A
// preset sets defaults only: any option given on the command line wins.
//
//   baseline   fan-out, 100 subscribers, 1 publisher at 100/s, 30 s   (echo servers: echo,
//              100 connections at 10/s each)
//   stress     fan-out, 1,000 subscribers, 1 publisher at 1,000/s, 60 s (echo servers: echo,
//              1,000 connections at full speed)
//   spike      connection storm: 2,000/s up to 2,000 concurrent, 20 s
//   endurance  soak: fan-out, 500 subscribers at 10/s, 10 minutes, server RSS/CPU sampled
#pragma once

#include <string>

#include "run_config.h"

namespace hermod::bench {

// True when name is a preset; fills config's scenario and sizes.
bool ApplyPreset(const std::string& name, Protocol protocol, RunConfig& config);

}  // namespace hermod::bench
