// The client protocol's command parser (proto::CommandParser): one WebSocket text message of
// 1 or of 10 newline-separated publish commands, each carrying a 64-byte JSON object as
// `data`, parsed to the end as a connection does. Counts commands/s and bytes/s.
#include <benchmark/benchmark.h>

#include <string>

#include "proto/command.h"

namespace {

using hermod::proto::Command;
using hermod::proto::CommandParser;
using hermod::proto::ParseStatus;

std::string PublishFrame(int commands) {
  std::string frame;
  for (int i = 1; i <= commands; ++i) {
    if (i > 1) frame += '\n';
    frame += "{\"id\":" + std::to_string(i) +
             ",\"publish\":{\"channel\":\"c\",\"data\":{\"seq\":123456,\"t\":1795435123456789,"
             "\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}}}";
  }
  return frame;
}

void BM_ParsePublishCommands(benchmark::State& state) {
  const int commands = static_cast<int>(state.range(0));
  const std::string frame = PublishFrame(commands);
  CommandParser parser;
  Command command;
  for (auto _ : state) {
    parser.Reset(frame);
    int parsed = 0;
    while (parser.Next(&command) == ParseStatus::kOk) ++parsed;
    if (parsed != commands) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(command.data.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * commands);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frame.size()));
  state.counters["frame_bytes"] = static_cast<double>(frame.size());
}
BENCHMARK(BM_ParsePublishCommands)->Arg(1)->Arg(10);

}  // namespace
